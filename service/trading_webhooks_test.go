package service_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// received lists the (type, object id) pairs a receiver got, each checked
// against the endpoint's secret.
func received(t *testing.T, r *webhooktest.Receiver, secret string) []string {
	t.Helper()
	var out []string
	for _, a := range r.Arrivals() {
		if !webhooktest.Verify(secret, a) {
			t.Fatalf("an arrival does not verify: %s", a.Body)
		}
		var ev struct {
			Type string
			Data struct {
				Deal    *struct{ ID string }
				Invoice *struct{ ID string }
			}
		}
		if err := json.Unmarshal(a.Body, &ev); err != nil {
			t.Fatal(err)
		}
		id := ""
		if ev.Data.Deal != nil {
			id = ev.Data.Deal.ID
		} else if ev.Data.Invoice != nil {
			id = ev.Data.Invoice.ID
		}
		out = append(out, ev.Type+" "+id)
	}
	slices.Sort(out)
	return out
}

// A purchase reaches each party with what is meant for it: the deal's
// change goes to every buyer the seller authorises (and not to the
// seller), the invoice to its buyer and its seller only. A revoked grant
// stops deal events but not the invoice's own.
func TestTradingEventsReachTheirAudience(t *testing.T) {
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	other, otherTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	s.grant(seller, sellerTok, other)
	rSeller, rBuyer, rOther := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	_, secretSeller := s.endpoint(sellerTok, rSeller.URL())
	_, secretBuyer := s.endpoint(buyerTok, rBuyer.URL())
	_, secretOther := s.endpoint(otherTok, rOther.URL())

	d := s.createDeal(sellerTok, 500)
	var sold struct {
		ID    string `json:"id"`
		Total int64  `json:"total"`
	}
	s.call(http.MethodPost, "/v1/deals/"+d.ID+"/purchase", buyerTok, nil, http.StatusCreated, &sold, "Idempotency-Key", "k")
	eventually(t, 10*time.Second, "every delivery", func() bool {
		return len(rBuyer.Arrivals()) == 3 && len(rOther.Arrivals()) == 2 && len(rSeller.Arrivals()) == 1
	})
	if got, want := received(t, rBuyer, secretBuyer), []string{"deal.created " + d.ID, "deal.updated " + d.ID, "invoice.issued " + sold.ID}; !slices.Equal(got, want) {
		t.Errorf("the buyer got %v, want %v", got, want)
	}
	if got, want := received(t, rOther, secretOther), []string{"deal.created " + d.ID, "deal.updated " + d.ID}; !slices.Equal(got, want) {
		t.Errorf("the other buyer got %v, want %v", got, want)
	}
	if got, want := received(t, rSeller, secretSeller), []string{"invoice.issued " + sold.ID}; !slices.Equal(got, want) {
		t.Errorf("the seller got %v, want %v", got, want)
	}

	// Each delivery log and feed shows its owner's own.
	logOf := func(tok string) []string {
		var log struct {
			Data []struct {
				EventType string `json:"event_type"`
			}
		}
		s.call(http.MethodGet, "/v1/webhook-deliveries", tok, nil, http.StatusOK, &log)
		var types []string
		for _, d := range log.Data {
			types = append(types, d.EventType)
		}
		slices.Sort(types)
		return types
	}
	// A round records its outcomes after its POSTs return, so the log
	// may trail the arrivals by a moment.
	var sellerLog, otherLog []string
	eventually(t, 10*time.Second, "the delivery logs", func() bool {
		sellerLog, otherLog = logOf(sellerTok), logOf(otherTok)
		return len(sellerLog) >= 1 && len(otherLog) >= 2
	})
	if !slices.Equal(sellerLog, []string{"invoice.issued"}) {
		t.Errorf("the seller's delivery log %v", sellerLog)
	}
	if !slices.Equal(otherLog, []string{"deal.created", "deal.updated"}) {
		t.Errorf("the other buyer's delivery log %v", otherLog)
	}

	// After the seller revokes the buyer, paying the invoice still
	// reaches the buyer; the deal's changes do not.
	s.revoke(seller, sellerTok, buyer)
	s.call(http.MethodPost, "/v1/invoices/"+sold.ID+"/payments", sellerTok, map[string]any{"amount": sold.Total, "reference": "r"}, http.StatusOK, nil)
	s.setPrice(sellerTok, s.createDeal(sellerTok, 900).ID, 800)
	eventually(t, 10*time.Second, "the payment's deliveries", func() bool {
		return len(rBuyer.Arrivals()) == 4 && len(rSeller.Arrivals()) == 2 && len(rOther.Arrivals()) == 4
	})
	time.Sleep(300 * time.Millisecond) // anything sent wrongly would have arrived by now
	if n := len(rBuyer.Arrivals()); n != 4 {
		t.Errorf("the revoked buyer got %d deliveries, want its 3 and invoice.paid", n)
	}
	if got := received(t, rBuyer, secretBuyer); !slices.Contains(got, "invoice.paid "+sold.ID) {
		t.Errorf("the revoked buyer did not get invoice.paid: %v", got)
	}
	if n := len(rOther.Arrivals()); n != 4 {
		t.Errorf("the other buyer got %d deliveries, want 4 (no invoice events)", n)
	}
}
