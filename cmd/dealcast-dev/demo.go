package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// runDemo walks a newcomer through the product against a running stack
// (dealcast dev): accounts, a grant, webhook endpoints on a receiver this
// command runs, then a deal created, repriced and sold, printing each
// verified delivery as it arrives.
func runDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	apiURL := fs.String("api", "http://localhost:8080", "the API's base URL")
	uiURL := fs.String("ui", "http://localhost:8233", "the Temporal Web UI's URL (empty to leave out)")
	wait := fs.Duration("wait", 15*time.Second, "how long to wait for each delivery")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	secret, err := cfg.TokenSecret()
	if err != nil {
		return err
	}
	d := &demo{api: strings.TrimRight(*apiURL, "/"), secret: secret, out: out, wait: *wait,
		http: &http.Client{Timeout: 10 * time.Second}, arrivals: make(chan demoArrival, 16)}
	return d.run(ctx, *uiURL, cfg.TemporalNamespace)
}

type demo struct {
	api      string
	secret   string
	out      io.Writer
	wait     time.Duration
	http     *http.Client
	arrivals chan demoArrival
}

type demoArrival struct {
	path string
	id   string
	ts   string
	sig  string
	body []byte
	at   time.Time
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demo) run(ctx context.Context, uiURL, namespace string) error {
	// The buyers' receiver: one local server, a path per buyer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		d.arrivals <- demoArrival{path: r.URL.Path, id: r.Header.Get("webhook-id"), ts: r.Header.Get("webhook-timestamp"),
			sig: r.Header.Get("webhook-signature"), body: body, at: time.Now()}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	receiver := "http://" + ln.Addr().String()

	d.say("Dealcast demo against %s\n", d.api)
	op, err := auth.Mint(d.secret, store.RoleOperator, "demo-operator", time.Hour, auth.MintOptions{})
	if err != nil {
		return err
	}
	var seller, northwind, contoso struct{ ID string }
	if err := d.call(ctx, http.MethodPost, "/v1/sellers", op, map[string]string{"name": "Acme Wholesale"}, &seller); err != nil {
		return fmt.Errorf("is dealcast dev running at %s? %w", d.api, err)
	}
	d.say("1. The operator creates the seller Acme Wholesale        %s", seller.ID)
	if err := d.call(ctx, http.MethodPost, "/v1/buyers", op, map[string]string{"name": "Northwind"}, &northwind); err != nil {
		return err
	}
	if err := d.call(ctx, http.MethodPost, "/v1/buyers", op, map[string]string{"name": "Contoso"}, &contoso); err != nil {
		return err
	}
	d.say("2. ...and two buyers: Northwind %s, Contoso %s", northwind.ID, contoso.ID)
	sellerTok, _ := auth.Mint(d.secret, store.RoleSeller, seller.ID, time.Hour, auth.MintOptions{})
	northTok, _ := auth.Mint(d.secret, store.RoleBuyer, northwind.ID, time.Hour, auth.MintOptions{})
	contosoTok, _ := auth.Mint(d.secret, store.RoleBuyer, contoso.ID, time.Hour, auth.MintOptions{})
	if err := d.call(ctx, http.MethodPut, "/v1/sellers/"+seller.ID+"/buyers/"+northwind.ID, sellerTok, nil, nil); err != nil {
		return err
	}
	d.say("3. Acme authorises Northwind, and only Northwind, to see its deals")

	var northEP, contosoEP struct{ Secret string }
	if err := d.call(ctx, http.MethodPost, "/v1/webhook-endpoints", northTok, map[string]string{"url": receiver + "/northwind"}, &northEP); err != nil {
		return err
	}
	if err := d.call(ctx, http.MethodPost, "/v1/webhook-endpoints", contosoTok, map[string]string{"url": receiver + "/contoso"}, &contosoEP); err != nil {
		return err
	}
	var acmeEP struct{ Secret string }
	if err := d.call(ctx, http.MethodPost, "/v1/webhook-endpoints", sellerTok, map[string]string{"url": receiver + "/acme"}, &acmeEP); err != nil {
		return err
	}
	d.say("4. Both buyers, and Acme for its invoices, register a webhook endpoint on this demo's receiver, %s\n", receiver)
	secrets := map[string]string{"/northwind": northEP.Secret, "/contoso": contosoEP.Secret, "/acme": acmeEP.Secret}

	var deal struct {
		ID      string
		Version int
	}
	start := time.Now()
	err = d.call(ctx, http.MethodPost, "/v1/deals", sellerTok, map[string]any{
		"name": "Winter bundle", "currency": "GBP", "total_price": 10000,
		"items":    []map[string]any{{"id": "coat", "name": "Coat", "price": 6000}, {"id": "boots", "name": "Boots", "price": 4000}},
		"discount": map[string]any{"type": "percentage", "amount": 10},
	}, &deal)
	if err != nil {
		return err
	}
	d.say("5. Acme posts the deal Winter bundle: £100.00, 10%% off, £90.00 net     %s", deal.ID)
	if err := d.expect(ctx, secrets, start); err != nil {
		return err
	}

	start = time.Now()
	if err := d.call(ctx, http.MethodPatch, "/v1/deals/"+deal.ID, sellerTok, map[string]any{
		"total_price": 8000, "items": []map[string]any{{"id": "coat", "name": "Coat", "price": 5000}, {"id": "boots", "name": "Boots", "price": 3000}},
	}, &deal, "If-Match", `"1"`); err != nil {
		return err
	}
	d.say("6. Acme cuts the price to £80.00 (If-Match: \"1\", so a stale edit would be refused)")
	if err := d.expect(ctx, secrets, start); err != nil {
		return err
	}

	start = time.Now()
	var invoice struct{ ID, Number string }
	if err := d.call(ctx, http.MethodPost, "/v1/deals/"+deal.ID+"/purchase", northTok, nil, &invoice,
		"Idempotency-Key", "demo-"+deal.ID, "If-Match", `"2"`); err != nil {
		return err
	}
	d.say("7. Northwind buys the deal at its price: invoice %s, £72.00 due in the platform's terms", invoice.Number)
	for range 3 { // the deal's change to Northwind, the invoice to Northwind and to Acme
		if err := d.expect(ctx, secrets, start); err != nil {
			return err
		}
	}

	// Contoso is not authorised: whatever it received would be a leak.
	select {
	case a := <-d.arrivals:
		return fmt.Errorf("unexpected delivery to %s", a.path)
	case <-time.After(500 * time.Millisecond):
	}
	d.say("\nContoso, not authorised, received nothing.")
	auctionID, err := d.auction(ctx, secrets, seller.ID, sellerTok, contoso.ID, northTok, contosoTok)
	if err != nil {
		return err
	}
	if uiURL != "" {
		q := url.Values{"query": {fmt.Sprintf("DealIds=%q", deal.ID)}}
		d.say("\nEach change ran as a Temporal workflow; see them in the Temporal UI:\n  %s/namespaces/%s/workflows?%s",
			strings.TrimRight(uiURL, "/"), namespace, q.Encode())
		d.say("The auction's clock is the workflow auction-%s:\n  %s/namespaces/%s/workflows/auction-%s",
			auctionID, strings.TrimRight(uiURL, "/"), namespace, auctionID)
	}
	d.say("Northwind's delivery log:  GET %s/v1/webhook-deliveries (as Northwind)", d.api)
	d.say("The invoice as PDF:        curl -H \"Authorization: Bearer $TOKEN\" -o %s.pdf %s/v1/invoices/%s/pdf", invoice.Number, d.api, invoice.ID)
	d.say("  (TOKEN=$(./bin/dealcast token --role buyer --sub %s))", northwind.ID)
	return nil
}

// auction runs a short auction of a second deal: Contoso is authorised
// too, Northwind bids and is outbid by Contoso, and with no request the
// auction closes on time and Contoso gets the invoice. It returns the
// auction's ID.
func (d *demo) auction(ctx context.Context, secrets map[string]string, sellerID, sellerTok, contosoID, northTok, contosoTok string) (string, error) {
	if err := d.call(ctx, http.MethodPut, "/v1/sellers/"+sellerID+"/buyers/"+contosoID, sellerTok, nil, nil); err != nil {
		return "", err
	}
	var lot, auction struct {
		ID       string
		ClosesAt time.Time `json:"closes_at"`
	}
	if err := d.call(ctx, http.MethodPost, "/v1/deals", sellerTok, map[string]any{"name": "Spring bundle", "currency": "GBP",
		"total_price": 5000, "items": []map[string]any{{"id": "hat", "name": "Hat", "price": 5000}}}, &lot); err != nil {
		return "", err
	}
	start := time.Now()
	if err := d.call(ctx, http.MethodPost, "/v1/deals/"+lot.ID+"/auctions", sellerTok, map[string]any{"start_price": 3000,
		"min_increment": 500, "closes_at": time.Now().Add(5 * time.Second).UTC().Format(time.RFC3339Nano)}, &auction); err != nil {
		return "", err
	}
	d.say("\n8. Acme authorises Contoso too and auctions Spring bundle: from £30.00, +£5.00 a bid, closing in 5 s   %s", auction.ID)
	for _, b := range []struct {
		who, tok string
		amount   int
	}{{"Northwind", northTok, 3000}, {"Contoso", contosoTok, 3500}} {
		if err := d.call(ctx, http.MethodPost, "/v1/auctions/"+auction.ID+"/bids", b.tok, map[string]int{"amount": b.amount}, nil,
			"Idempotency-Key", "demo-"+auction.ID+"-"+b.who); err != nil {
			return "", err
		}
		d.say("   %s bids £%d.%02d", b.who, b.amount/100, b.amount%100)
	}
	d.say("9. Nobody calls the API again: the auction's Temporal workflow closes it at closes_at")
	// Every party hears every step; the demo shows each delivery until the
	// three that tell the story have come.
	want := map[string]bool{"northwind bid.outbid": false, "northwind auction.closed": false, "contoso invoice.issued": false}
	deadline := time.After(time.Until(auction.ClosesAt) + d.wait)
	for seen := 0; seen < len(want); {
		select {
		case a := <-d.arrivals:
			typ, err := d.show(secrets, a, start)
			if err != nil {
				return "", err
			}
			if done, ok := want[strings.TrimPrefix(a.path, "/")+" "+typ]; ok && !done {
				want[strings.TrimPrefix(a.path, "/")+" "+typ] = true
				seen++
			}
		case <-deadline:
			return "", fmt.Errorf("the auction's deliveries did not all come within %v of its close: %v", d.wait, want)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	var closed struct {
		Outcome   string    `json:"outcome"`
		InvoiceID *string   `json:"invoice_id"`
		UpdatedAt time.Time `json:"updated_at"`
	}
	if err := d.call(ctx, http.MethodGet, "/v1/auctions/"+auction.ID, sellerTok, nil, &closed); err != nil {
		return "", err
	}
	if closed.InvoiceID == nil {
		return "", fmt.Errorf("the auction closed %s without an invoice", closed.Outcome)
	}
	var inv struct {
		Number string
		Total  int
	}
	if err := d.call(ctx, http.MethodGet, "/v1/invoices/"+*closed.InvoiceID, contosoTok, nil, &inv); err != nil {
		return "", err
	}
	d.say("10. The auction closed %d ms after closes_at: %s; Contoso's invoice %s for £%d.%02d",
		closed.UpdatedAt.Sub(auction.ClosesAt).Milliseconds(), closed.Outcome, inv.Number, inv.Total/100, inv.Total%100)
	// Late copies of the auction's events (at least once) are not news.
	for drained := false; !drained; {
		select {
		case a := <-d.arrivals:
			if _, err := d.show(secrets, a, start); err != nil {
				return "", err
			}
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}
	return auction.ID, nil
}

// expect waits for the next delivery, checks its signature and prints it.
func (d *demo) expect(ctx context.Context, secrets map[string]string, since time.Time) error {
	select {
	case a := <-d.arrivals:
		_, err := d.show(secrets, a, since)
		return err
	case <-time.After(d.wait):
		return fmt.Errorf("no delivery within %v: is the worker running (dealcast dev runs one)?", d.wait)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// show checks a delivery's signature, prints it and returns its type.
func (d *demo) show(secrets map[string]string, a demoArrival, since time.Time) (string, error) {
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Deal struct {
				Version int `json:"version"`
			} `json:"deal"`
			Invoice *struct {
				Number string `json:"number"`
			} `json:"invoice"`
			Auction *struct {
				Status  string `json:"status"`
				BestBid *int   `json:"best_bid"`
			} `json:"auction"`
			Previous map[string]any `json:"previous"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &ev); err != nil {
		return "", fmt.Errorf("delivery to %s is not an event: %w", a.path, err)
	}
	mark := "signature verified"
	if !verifySignature(secrets[a.path], a) {
		mark = "SIGNATURE DOES NOT VERIFY"
	}
	changed := ""
	if len(ev.Data.Previous) > 0 {
		keys := make([]string, 0, len(ev.Data.Previous))
		for k := range ev.Data.Previous {
			keys = append(keys, k)
		}
		changed = " (changed: " + strings.Join(keys, ", ") + ")"
	}
	what := fmt.Sprintf("v%d", ev.Data.Deal.Version)
	switch {
	case ev.Data.Invoice != nil:
		what = ev.Data.Invoice.Number
	case ev.Data.Auction != nil && ev.Data.Auction.BestBid != nil:
		what = fmt.Sprintf("%s, best £%d.%02d", ev.Data.Auction.Status, *ev.Data.Auction.BestBid/100, *ev.Data.Auction.BestBid%100)
	case ev.Data.Auction != nil:
		what = ev.Data.Auction.Status
	}
	d.say("   -> %s got %s %s%s, %s, %d ms after the API answered",
		strings.TrimPrefix(a.path, "/"), ev.Type, what, changed, mark, a.at.Sub(since).Milliseconds())
	return ev.Type, nil
}

// verifySignature checks a Standard Webhooks signature.
func verifySignature(secret string, a demoArrival) bool {
	key, err := webhook.DecodeSecret(secret)
	return err == nil && webhook.Verify(a.id, a.ts, a.body, a.sig, key)
}

// call sends a JSON request and decodes a JSON answer into out.
func (d *demo) call(ctx context.Context, method, path, token string, body, out any, headers ...string) error {
	_, err := apiCall(ctx, d.http, d.api, method, path, token, body, out, headers...)
	return err
}
