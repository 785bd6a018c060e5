package e2e_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/sdk/go/dealcast"
)

const jwtSecret = "sdk-test-secret-for-hs256-tokens"

// startService runs the real API, as `dealcast api` serves it, on an HTTP
// server over this package's database, and returns its base URL.
func startService(t *testing.T) string {
	t.Helper()
	v, err := auth.NewVerifier(t.Context(), auth.Options{Secret: jwtSecret})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(testDB.Pool)
	st.FeedSettle = 0 // the event feed shows events at once
	key := make([]byte, webhook.KeySize)
	_, _ = rand.Read(key)
	sealer, err := webhook.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	// No webhook delivery runs: events stay in the outbox. Private webhook
	// URLs are allowed so that endpoints need no DNS.
	h, _ := api.New(api.Deps{
		Store: st, Verifier: v, Sealer: sealer, Ready: st.Ping,
		Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
		AllowPrivateWebhooks: true,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// client is the generated client acting as sub with role.
func client(t *testing.T, base string, role store.Role, sub string) *dealcast.ClientWithResponses {
	t.Helper()
	tok, err := auth.Mint(jwtSecret, role, sub, time.Hour, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dealcast.NewClientWithResponses(base, dealcast.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// status fails the test unless the response has the wanted status.
func status(t *testing.T, op string, got int, body []byte, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d: %s", op, got, want, body)
	}
}

// TestSDK drives the API through the client generated from its own
// description, as an integrator would: accounts, a grant, a deal created,
// patched, read by the buyer and listed, the event feed, a webhook
// endpoint, and the documented errors.
func TestSDK(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := startService(t)
	ops := client(t, base, store.RoleOperator, "ops-1")

	// Accounts (operator).
	sr, err := ops.CreateSellerWithResponse(ctx, dealcast.CreateSellerJSONRequestBody{Name: "Acme Wholesale"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create seller", sr.StatusCode(), sr.Body, http.StatusCreated)
	seller := *sr.JSON201
	br, err := ops.CreateBuyerWithResponse(ctx, dealcast.CreateBuyerJSONRequestBody{Name: "Bolt Retail"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create buyer", br.StatusCode(), br.Body, http.StatusCreated)
	buyer := *br.JSON201
	or, err := ops.CreateBuyerWithResponse(ctx, dealcast.CreateBuyerJSONRequestBody{Name: "Other Buyer"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create buyer", or.StatusCode(), or.Body, http.StatusCreated)
	if seller.Name != "Acme Wholesale" || seller.CreatedAt.IsZero() {
		t.Errorf("seller %+v", seller)
	}
	sc := client(t, base, store.RoleSeller, seller.Id.String())
	bc := client(t, base, store.RoleBuyer, buyer.Id.String())
	other := client(t, base, store.RoleBuyer, or.JSON201.Id.String())

	gs, err := bc.GetBuyerWithResponse(ctx, buyer.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "get buyer", gs.StatusCode(), gs.Body, http.StatusOK)
	if gs.JSON200.Id != buyer.Id {
		t.Errorf("get buyer: %+v", gs.JSON200)
	}

	// The seller authorises the buyer.
	gr, err := sc.GrantBuyerWithResponse(ctx, seller.Id, buyer.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "grant", gr.StatusCode(), gr.Body, http.StatusNoContent)
	lb, err := sc.ListSellerBuyersWithResponse(ctx, seller.Id, nil)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list seller buyers", lb.StatusCode(), lb.Body, http.StatusOK)
	if len(lb.JSON200.Data) != 1 || lb.JSON200.Data[0].Id != buyer.Id {
		t.Errorf("authorised buyers %+v", lb.JSON200.Data)
	}
	ls, err := bc.ListBuyerSellersWithResponse(ctx, buyer.Id, nil)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list buyer sellers", ls.StatusCode(), ls.Body, http.StatusOK)
	if len(ls.JSON200.Data) != 1 || ls.JSON200.Data[0].Id != seller.Id {
		t.Errorf("authorising sellers %+v", ls.JSON200.Data)
	}

	// A deal, created once under an Idempotency-Key.
	items := []dealcast.Item{{Id: "sku-1", Name: "Bundle", Price: 6000}, {Id: "sku-2", Name: "Crate", Price: 4000}}
	draft := dealcast.CreateDealJSONRequestBody{
		Name: "Winter bundle", Currency: "GBP", TotalPrice: 10000,
		Items:    items,
		Discount: nullable.NewNullableWithValue(dealcast.Discount{Type: dealcast.Flat, Amount: 1000}),
	}
	key := "sdk-" + seller.Id.String()
	cr, err := sc.CreateDealWithResponse(ctx, &dealcast.CreateDealParams{IdempotencyKey: &key}, draft)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create deal", cr.StatusCode(), cr.Body, http.StatusCreated)
	d := *cr.JSON201
	if d.Seller != seller.Id || d.Currency != "gbp" || d.NetPrice != 9000 || d.Version != 1 || d.Status != dealcast.DealStatusAvailable {
		t.Errorf("created deal %+v", d)
	}
	if got := d.Discount.MustGet(); got.Type != dealcast.Flat || got.Amount != 1000 {
		t.Errorf("created deal's discount %+v", got)
	}
	again, err := sc.CreateDealWithResponse(ctx, &dealcast.CreateDealParams{IdempotencyKey: &key}, draft)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "repeat create deal", again.StatusCode(), again.Body, http.StatusCreated)
	if again.JSON201.Id != d.Id {
		t.Errorf("the same Idempotency-Key made a second deal %s", again.JSON201.Id)
	}

	// A merge patch: new price and items, the discount removed (null).
	v1 := "1"
	patch := dealcast.UpdateDealApplicationMergePatchPlusJSONRequestBody{
		TotalPrice: ptr(int64(12000)),
		Items:      &[]dealcast.Item{{Id: "sku-1", Name: "Bundle", Price: 12000}},
		Discount:   nullable.NewNullNullable[dealcast.Discount](),
	}
	pr, err := sc.UpdateDealWithApplicationMergePatchPlusJSONBodyWithResponse(ctx, d.Id, &dealcast.UpdateDealParams{IfMatch: &v1}, patch)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "patch deal", pr.StatusCode(), pr.Body, http.StatusOK)
	p := *pr.JSON200
	if p.Version != 2 || p.TotalPrice != 12000 || p.NetPrice != 12000 || !p.Discount.IsNull() {
		t.Errorf("patched deal %+v", p)
	}
	// A patch against the old version is refused with a problem.
	stale, err := sc.UpdateDealWithApplicationMergePatchPlusJSONBodyWithResponse(ctx, d.Id, &dealcast.UpdateDealParams{IfMatch: &v1},
		dealcast.UpdateDealApplicationMergePatchPlusJSONRequestBody{Name: ptr("Too late")})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "stale patch", stale.StatusCode(), stale.Body, http.StatusPreconditionFailed)
	if stale.ApplicationproblemJSON412 == nil || stale.ApplicationproblemJSON412.Status == nil || *stale.ApplicationproblemJSON412.Status != 412 {
		t.Errorf("stale patch: problem %s", stale.Body)
	}
	// So is a plain application/json patch of the status.
	sold := dealcast.PatchStatus("sold")
	jp, err := sc.UpdateDealWithResponse(ctx, d.Id, nil, dealcast.UpdateDealJSONRequestBody{Status: &sold})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "patch deal (application/json)", jp.StatusCode(), jp.Body, http.StatusOK)
	if jp.JSON200.Version != 3 || jp.JSON200.Status != dealcast.DealStatusSold {
		t.Errorf("deal after marking sold %+v", jp.JSON200)
	}

	// The buyer reads it; another buyer cannot see it.
	gd, err := bc.GetDealWithResponse(ctx, d.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "buyer gets deal", gd.StatusCode(), gd.Body, http.StatusOK)
	if got := gd.JSON200; got.Id != d.Id || got.Version != 3 || got.Name != "Winter bundle" || len(got.Items) != 1 {
		t.Errorf("buyer's view %+v", got)
	}
	if etag := gd.HTTPResponse.Header.Get("ETag"); !strings.Contains(etag, "3") {
		t.Errorf("ETag %q, want version 3", etag)
	}
	hidden, err := other.GetDealWithResponse(ctx, d.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "unauthorised buyer gets deal", hidden.StatusCode(), hidden.Body, http.StatusNotFound)
	if hidden.ApplicationproblemJSON404 == nil {
		t.Errorf("404 without a problem body: %s", hidden.Body)
	}

	// Lists: the buyer's deals, filtered by seller and status.
	soldStatus := dealcast.ListDealsParamsStatus("sold")
	limit := int64(10)
	ld, err := bc.ListDealsWithResponse(ctx, &dealcast.ListDealsParams{Seller: &seller.Id, Status: &soldStatus, Limit: &limit})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list deals", ld.StatusCode(), ld.Body, http.StatusOK)
	if len(ld.JSON200.Data) != 1 || ld.JSON200.Data[0].Id != d.Id || !ld.JSON200.NextCursor.IsNull() {
		t.Errorf("buyer's deals %s", ld.Body)
	}

	// The event feed: created, then two updates with their previous values.
	ev, err := bc.ListEventsWithResponse(ctx, &dealcast.ListEventsParams{})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list events", ev.StatusCode(), ev.Body, http.StatusOK)
	var types []string
	for _, e := range ev.JSON200.Data {
		if e.Data.Deal.Id == d.Id {
			types = append(types, string(e.Type))
		}
	}
	if strings.Join(types, " ") != "deal.created deal.updated deal.updated" {
		t.Errorf("events %v: %s", types, ev.Body)
	}
	if prev := ev.JSON200.Data[1].Data.Previous; prev == nil || (*prev)["total_price"] != float64(10000) {
		t.Errorf("first update's previous values %v", prev)
	}

	// A webhook endpoint: its secret is shown on create and on rotation.
	url := "http://127.0.0.1:9/webhooks"
	er, err := bc.CreateWebhookEndpointWithResponse(ctx, dealcast.CreateWebhookEndpointJSONRequestBody{Url: url})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create endpoint", er.StatusCode(), er.Body, http.StatusCreated)
	if !strings.HasPrefix(er.JSON201.Secret, "whsec_") || er.JSON201.Url != url || !er.JSON201.Enabled {
		t.Errorf("endpoint %+v", er.JSON201)
	}
	rr, err := bc.RotateWebhookEndpointSecretWithResponse(ctx, er.JSON201.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "rotate secret", rr.StatusCode(), rr.Body, http.StatusOK)
	if rr.JSON200.Secret == er.JSON201.Secret || !strings.HasPrefix(rr.JSON200.Secret, "whsec_") {
		t.Errorf("rotated secret %q", rr.JSON200.Secret)
	}
	off := false
	ur, err := bc.UpdateWebhookEndpointWithResponse(ctx, er.JSON201.Id, dealcast.UpdateWebhookEndpointJSONRequestBody{Enabled: &off})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "disable endpoint", ur.StatusCode(), ur.Body, http.StatusOK)
	if ur.JSON200.Enabled {
		t.Errorf("endpoint still enabled: %s", ur.Body)
	}
	le, err := bc.ListWebhookEndpointsWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list endpoints", le.StatusCode(), le.Body, http.StatusOK)
	if len(le.JSON200.Data) != 1 || le.JSON200.Data[0].Id != er.JSON201.Id {
		t.Errorf("endpoints %s", le.Body)
	}
	ldl, err := bc.ListWebhookDeliveriesWithResponse(ctx, &dealcast.ListWebhookDeliveriesParams{EndpointId: &er.JSON201.Id})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "list deliveries", ldl.StatusCode(), ldl.Body, http.StatusOK)
	dr, err := bc.DeleteWebhookEndpointWithResponse(ctx, er.JSON201.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "delete endpoint", dr.StatusCode(), dr.Body, http.StatusNoContent)

	// Revoking the grant hides the deal again.
	rv, err := sc.RevokeBuyerWithResponse(ctx, seller.Id, buyer.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "revoke", rv.StatusCode(), rv.Body, http.StatusNoContent)
	gone, err := bc.GetDealWithResponse(ctx, d.Id)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "buyer gets deal after revoke", gone.StatusCode(), gone.Body, http.StatusNotFound)
}

// TestSDKErrors checks that the documented problems decode: 401, 403 and
// a 422 naming each bad field.
func TestSDKErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := startService(t)
	anon, err := dealcast.NewClientWithResponses(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := anon.ListDealsWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "no token", r.StatusCode(), r.Body, http.StatusUnauthorized)
	if r.ApplicationproblemJSON401 == nil || r.ApplicationproblemJSON401.Detail == nil {
		t.Errorf("401 problem %s", r.Body)
	}

	ops := client(t, base, store.RoleOperator, "ops-1")
	br, err := ops.CreateBuyerWithResponse(ctx, dealcast.CreateBuyerJSONRequestBody{Name: "Bolt Retail"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create buyer", br.StatusCode(), br.Body, http.StatusCreated)
	buyer := client(t, base, store.RoleBuyer, br.JSON201.Id.String())
	cr, err := buyer.CreateSellerWithResponse(ctx, dealcast.CreateSellerJSONRequestBody{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "buyer creates seller", cr.StatusCode(), cr.Body, http.StatusForbidden)
	if cr.ApplicationproblemJSON403 == nil {
		t.Errorf("403 problem %s", cr.Body)
	}

	sr, err := ops.CreateSellerWithResponse(ctx, dealcast.CreateSellerJSONRequestBody{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	status(t, "create seller", sr.StatusCode(), sr.Body, http.StatusCreated)
	sc := client(t, base, store.RoleSeller, sr.JSON201.Id.String())
	bad := dealcast.CreateDealJSONRequestBody{
		Name: "Mismatch", Currency: "gbp", TotalPrice: 5,
		Items: []dealcast.Item{{Id: "a", Name: "A", Price: 3}},
	}
	vr, err := sc.CreateDealWithResponse(ctx, nil, bad)
	if err != nil {
		t.Fatal(err)
	}
	status(t, "invalid deal", vr.StatusCode(), vr.Body, http.StatusUnprocessableEntity)
	p := vr.ApplicationproblemJSON422
	if p == nil || p.Errors.IsNull() || !p.Errors.IsSpecified() {
		t.Fatalf("422 problem %s", vr.Body)
	}
	var locations []string
	for _, e := range p.Errors.MustGet() {
		if e.Location != nil {
			locations = append(locations, *e.Location)
		}
	}
	if !strings.Contains(strings.Join(locations, " "), "body.total_price") {
		t.Errorf("422 locations %v, want body.total_price", locations)
	}
}

func ptr[T any](v T) *T { return &v }
