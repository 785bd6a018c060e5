package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/invoice"
)

// auctionDraft is a valid auction request closing after d: start 1,000,
// increment 100, reserve 5,000, extension 60 s.
func auctionDraft(d time.Duration) map[string]any {
	return map[string]any{"start_price": 1000, "min_increment": 100, "reserve_price": 5000,
		"closes_at": time.Now().Add(d).UTC().Format(time.RFC3339Nano), "extend_seconds": 60}
}

func (m *market) auction(dealID string, body map[string]any) auction.Auction {
	m.e.t.Helper()
	var a auction.Auction
	m.e.do(http.MethodPost, "/v1/deals/"+dealID+"/auctions", m.sellerToken, body).want(http.StatusCreated).decode(&a)
	return a
}

func (m *market) bid(auctionID, token string, amount int64, key string) *response {
	m.e.t.Helper()
	return m.e.do(http.MethodPost, "/v1/auctions/"+auctionID+"/bids", token, map[string]any{"amount": amount}, "Idempotency-Key", key)
}

// Every rule of a new auction is checked, each broken one named.
func TestCreateAuctionRules(t *testing.T) {
	m := newMarket(t, 0)
	d := m.deal()
	now := time.Now().UTC()
	cases := map[string]struct {
		change func(map[string]any)
		field  string
	}{
		"start_price 0":          {func(b map[string]any) { b["start_price"] = 0 }, "body.start_price"},
		"min_increment negative": {func(b map[string]any) { b["min_increment"] = -1 }, "body.min_increment"},
		"reserve under start":    {func(b map[string]any) { b["reserve_price"] = 999 }, "body.reserve_price"},
		"closes_at past":         {func(b map[string]any) { b["closes_at"] = now.Add(-time.Minute).Format(time.RFC3339) }, "body.closes_at"},
		"closes_at beyond 90 d":  {func(b map[string]any) { b["closes_at"] = now.Add(91 * 24 * time.Hour).Format(time.RFC3339) }, "body.closes_at"},
		"opens_at after close":   {func(b map[string]any) { b["opens_at"] = now.Add(2 * time.Hour).Format(time.RFC3339) }, "body.opens_at"},
		"extend_seconds 3601":    {func(b map[string]any) { b["extend_seconds"] = 3601 }, "body.extend_seconds"},
	}
	for name, c := range cases {
		body := auctionDraft(time.Hour)
		c.change(body)
		p := m.e.do(http.MethodPost, "/v1/deals/"+d.ID+"/auctions", m.sellerToken, body).wantProblem(http.StatusUnprocessableEntity)
		if !slices.Contains(p.locations(), c.field) {
			t.Errorf("%s: locations %v do not name %s", name, p.locations(), c.field)
		}
	}
	body := auctionDraft(time.Hour)
	body["start_price"], body["min_increment"], body["extend_seconds"] = 0, 0, -1
	p := m.e.do(http.MethodPost, "/v1/deals/"+d.ID+"/auctions", m.sellerToken, body).wantProblem(http.StatusUnprocessableEntity)
	if got := p.locations(); !slices.Contains(got, "body.start_price") || !slices.Contains(got, "body.min_increment") || !slices.Contains(got, "body.extend_seconds") {
		t.Errorf("every broken rule at once: %v", got)
	}

	scheduled := auctionDraft(time.Hour)
	scheduled["opens_at"] = now.Add(30 * time.Minute).Format(time.RFC3339)
	a := m.auction(d.ID, scheduled)
	if a.Status != auction.StatusScheduled || a.Currency != "gbp" || a.MinimumNextBid != 1000 || *a.ReservePrice != 5000 {
		t.Errorf("created %+v", a)
	}
	m.e.do(http.MethodPost, "/v1/deals/"+d.ID+"/auctions", m.sellerToken, auctionDraft(time.Hour)).wantProblem(http.StatusConflict)

	// A retry after closes_at replays the auction its key made; a new key
	// with the same body is refused by the time rule.
	short := auctionDraft(300 * time.Millisecond)
	other := m.deal()
	var first, again auction.Auction
	m.e.do(http.MethodPost, "/v1/deals/"+other.ID+"/auctions", m.sellerToken, short, "Idempotency-Key", "a1").want(http.StatusCreated).decode(&first)
	time.Sleep(400 * time.Millisecond)
	r := m.e.do(http.MethodPost, "/v1/deals/"+other.ID+"/auctions", m.sellerToken, short, "Idempotency-Key", "a1").want(http.StatusCreated)
	if r.decode(&again); again.ID != first.ID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a retry after closes_at: auction %s (replayed %q), first %s", again.ID, r.Header.Get("Idempotent-Replayed"), first.ID)
	}
	p = m.e.do(http.MethodPost, "/v1/deals/"+other.ID+"/auctions", m.sellerToken, short, "Idempotency-Key", "a2").wantProblem(http.StatusUnprocessableEntity)
	if !slices.Contains(p.locations(), "body.closes_at") {
		t.Errorf("a new key after closes_at: %v", p.locations())
	}
}

// While the auction is live the deal is held: purchase 409, a PATCH of
// anything but name 409, a rename is fine. A scheduled auction takes no
// bids.
func TestAuctionHoldsItsDeal(t *testing.T) {
	m := newMarket(t, 1)
	d := m.deal()
	scheduled := auctionDraft(time.Hour)
	scheduled["opens_at"] = time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)
	a := m.auction(d.ID, scheduled)
	m.purchase(d.ID, m.tokens[0], "p").wantProblem(http.StatusConflict)
	m.e.do(http.MethodPatch, "/v1/deals/"+d.ID, m.sellerToken, map[string]any{"status": "sold"}).wantProblem(http.StatusConflict)
	m.e.do(http.MethodPatch, "/v1/deals/"+d.ID, m.sellerToken, map[string]any{"name": "Renamed"}).want(http.StatusOK)
	m.bid(a.ID, m.tokens[0], 1000, "early").wantProblem(http.StatusConflict)
}

// Bids: the minimum named in a 422, Idempotency-Key required and replayed,
// sellers cannot bid; each party's view of the auction and its bids.
func TestBidsAndViews(t *testing.T) {
	m := newMarket(t, 2)
	a := m.auction(m.deal().ID, auctionDraft(time.Hour))
	m.e.do(http.MethodPost, "/v1/auctions/"+a.ID+"/bids", m.tokens[0], map[string]any{"amount": 1000}).wantProblem(http.StatusBadRequest)
	m.bid(a.ID, m.sellerToken, 1000, "s").wantProblem(http.StatusForbidden)
	p := m.bid(a.ID, m.tokens[0], 999, "low").wantProblem(http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.amount" || !strings.Contains(p.Errors[0].Message, "1000") {
		t.Errorf("a low bid's problem %+v", p)
	}
	var first auction.Bid
	r := m.bid(a.ID, m.tokens[0], 1200, "b1").want(http.StatusCreated)
	r.decode(&first)
	if !first.Leading || first.Amount != 1200 || first.Buyer != "" {
		t.Errorf("bid %+v", first)
	}
	if again := m.bid(a.ID, m.tokens[0], 1200, "b1").want(http.StatusCreated); again.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("a repeated bid was not replayed")
	}
	m.bid(a.ID, m.tokens[0], 1300, "b1").wantProblem(http.StatusConflict)
	p = m.bid(a.ID, m.tokens[1], 1250, "b2").wantProblem(http.StatusUnprocessableEntity)
	if !strings.Contains(p.Errors[0].Message, "1300") {
		t.Errorf("the minimum after a bid: %+v", p)
	}
	m.bid(a.ID, m.tokens[1], 1300, "b3").want(http.StatusCreated)

	// The buyer's copy has no reserve_price and no winner; leading is the caller's.
	sellerKeys := []string{"id", "deal_id", "seller", "currency", "start_price", "min_increment", "reserve_price",
		"reserve_met", "opens_at", "closes_at", "extend_seconds", "status", "outcome", "bid_count", "best_bid",
		"minimum_next_bid", "leading", "winner", "invoice_id", "version", "created_at", "updated_at"}
	buyerKeys := slices.DeleteFunc(slices.Clone(sellerKeys), func(k string) bool { return k == "reserve_price" || k == "winner" })
	wantKeys(t, m.e.do(http.MethodGet, "/v1/auctions/"+a.ID, m.sellerToken, nil).want(http.StatusOK).Body, sellerKeys)
	var views [2]auction.Auction
	for i, tok := range m.tokens {
		r := m.e.do(http.MethodGet, "/v1/auctions/"+a.ID, tok, nil).want(http.StatusOK)
		wantKeys(t, r.Body, buyerKeys)
		r.decode(&views[i])
	}
	if views[0].Leading || !views[1].Leading || views[1].BidCount != 2 || *views[1].BestBid != 1300 || views[1].MinimumNextBid != 1400 {
		t.Errorf("buyers' views %+v", views)
	}

	var sellerBids, buyerBids struct{ Data []auction.Bid }
	m.e.do(http.MethodGet, "/v1/auctions/"+a.ID+"/bids", m.sellerToken, nil).want(http.StatusOK).decode(&sellerBids)
	m.e.do(http.MethodGet, "/v1/auctions/"+a.ID+"/bids", m.tokens[0], nil).want(http.StatusOK).decode(&buyerBids)
	if len(sellerBids.Data) != 2 || sellerBids.Data[0].Buyer != m.buyers[1] || !sellerBids.Data[0].Leading || sellerBids.Data[1].Leading {
		t.Errorf("the seller's bids %+v", sellerBids.Data)
	}
	if len(buyerBids.Data) != 1 || buyerBids.Data[0].ID != first.ID || buyerBids.Data[0].Buyer != "" {
		t.Errorf("a buyer's bids %+v", buyerBids.Data)
	}
	var list struct{ Data []auction.Auction }
	m.e.do(http.MethodGet, "/v1/auctions?status=open&deal_id="+a.DealID, m.tokens[0], nil).want(http.StatusOK).decode(&list)
	if len(list.Data) != 1 || list.Data[0].ID != a.ID {
		t.Errorf("a buyer's list %+v", list.Data)
	}
	m.e.do(http.MethodPost, "/v1/auctions/"+a.ID+"/cancel", m.sellerToken, nil).wantProblem(http.StatusConflict)
}

// Close-now: the best bid meeting the reserve wins and its buyer gets the
// invoice for the winning amount; afterwards nothing more can be done.
func TestCloseNowIssuesTheWinnersInvoice(t *testing.T) {
	m := newMarket(t, 2)
	a := m.auction(m.deal().ID, auctionDraft(time.Hour))
	m.bid(a.ID, m.tokens[0], 5000, "a").want(http.StatusCreated)
	m.bid(a.ID, m.tokens[1], 6000, "b").want(http.StatusCreated)
	var closed auction.Auction
	m.e.do(http.MethodPost, "/v1/auctions/"+a.ID+"/close", m.sellerToken, nil).want(http.StatusOK).decode(&closed)
	if closed.Status != auction.StatusClosed || *closed.Outcome != auction.OutcomeWon || *closed.Winner != m.buyers[1] ||
		closed.InvoiceID == nil || !closed.ReserveMet {
		t.Fatalf("closed %+v", closed)
	}
	var inv invoice.Invoice
	m.e.do(http.MethodGet, "/v1/invoices/"+*closed.InvoiceID, m.tokens[1], nil).want(http.StatusOK).decode(&inv)
	if inv.Total != 6000 || inv.AuctionID == nil || *inv.AuctionID != a.ID || inv.Buyer != m.buyers[1] {
		t.Errorf("the winner's invoice %+v", inv)
	}
	m.e.do(http.MethodGet, "/v1/invoices/"+*closed.InvoiceID, m.tokens[0], nil).wantProblem(http.StatusNotFound)
	m.e.do(http.MethodPost, "/v1/auctions/"+a.ID+"/close", m.sellerToken, nil).wantProblem(http.StatusConflict)
	m.bid(a.ID, m.tokens[0], 9000, "late").wantProblem(http.StatusConflict)
	var d struct{ Status string }
	m.e.do(http.MethodGet, "/v1/deals/"+a.DealID, m.sellerToken, nil).want(http.StatusOK).decode(&d)
	if d.Status != "sold" {
		t.Errorf("the won deal is %s", d.Status)
	}
}
