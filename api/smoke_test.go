package api_test

import (
	"net/http"
	"testing"

	"github.com/dealcast/dealcast/internal/deal"
)

func TestCreateAndReadDeal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	r := e.do(http.MethodPost, "/v1/deals", seller, map[string]any{
		"name": "Bundle", "currency": "GBP", "total_price": 10000,
		"items":    []map[string]any{{"id": "a", "name": "A", "price": 6000}, {"id": "b", "name": "B", "price": 4000}},
		"discount": map[string]any{"type": "percentage", "amount": 12.5},
	}).want(http.StatusCreated)
	var d deal.Deal
	r.decode(&d)
	if d.NetPrice != 8750 || d.Currency != "gbp" || d.Version != 1 || d.Status != deal.StatusAvailable {
		t.Fatalf("unexpected deal %+v", d)
	}
	got := e.do(http.MethodGet, "/v1/deals/"+d.ID, buyer, nil).want(http.StatusOK)
	if got.Header.Get("ETag") != `"1"` {
		t.Fatalf("ETag %q", got.Header.Get("ETag"))
	}
}
