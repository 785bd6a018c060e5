package activities_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// handovers records what the activity hands to delivery.
type handovers struct {
	mu   sync.Mutex
	refs []store.EventRef
}

func (h *handovers) Dispatch(_ context.Context, ev store.EventRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refs = append(h.refs, ev)
}

// sell issues an invoice of a new deal to a new buyer, due after terms.
func (f *fixture) sell(terms time.Duration) invoice.Invoice {
	f.t.Helper()
	d, err := deal.New(uuid.NewString(), f.seller, deal.Draft{Name: "lot", TotalPrice: 500, Currency: "EUR",
		Items: []deal.Item{{ID: "i1", Name: "Item", Price: 500}}})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, _, _, err := f.store.CreateDeal(f.ctx, d, nil); err != nil {
		f.t.Fatal(err)
	}
	sale, err := f.store.Purchase(f.ctx, store.Purchase{DealID: d.ID, Buyer: f.buyer(true), Terms: terms,
		Idem: store.Idempotency{Key: "k", Request: []byte(d.ID)}})
	if err != nil {
		f.t.Fatal(err)
	}
	return sale.Invoice
}

func (f *fixture) markOverdue(id string) (bool, error) {
	f.t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(f.acts.MarkInvoiceOverdue, id)
	if err != nil {
		return false, err
	}
	var marked bool
	if err := val.Get(&marked); err != nil {
		f.t.Fatal(err)
	}
	return marked, nil
}

// An open invoice past its due date is marked once and its event handed to
// delivery; repeating the activity writes and hands over nothing more.
func TestMarkInvoiceOverdueOnceAndHandsItOver(t *testing.T) {
	t.Parallel()
	f := setup(t)
	h := &handovers{}
	f.acts.Delivery = h
	inv := f.sell(time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	for i, want := range []bool{true, false} {
		if marked, err := f.markOverdue(inv.ID); err != nil || marked != want {
			t.Fatalf("call %d: marked %v, %v; want %v", i+1, marked, err, want)
		}
	}
	if len(h.refs) != 1 || h.refs[0].Type != string(invoice.EventOverdue) || h.refs[0].InvoiceID != inv.ID {
		t.Fatalf("handed over %+v, want the one invoice.overdue", h.refs)
	}
}

// Woken before the due date by this worker's clock (the server's timer
// ran ahead), the activity fails with a retry timed for the due date
// rather than ending with no notice; a paid invoice is simply done.
func TestMarkInvoiceOverdueTooEarlyRetriesAtTheDueDate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	inv := f.sell(time.Hour)
	_, err := f.markOverdue(inv.ID)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != "InvoiceNotDue" || appErr.NonRetryable() {
		t.Fatalf("error %v, want a retryable InvoiceNotDue", err)
	}
	if d := appErr.NextRetryDelay(); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("next retry in %v, want at the due date an hour away", d)
	}
	if _, err := f.store.PayInvoice(f.ctx, store.Viewer{Role: store.RoleSeller, ID: f.seller}, inv.ID,
		store.Payment{Amount: inv.Total, Reference: "r"}); err != nil {
		t.Fatal(err)
	}
	if marked, err := f.markOverdue(inv.ID); err != nil || marked {
		t.Fatalf("paid invoice: marked %v, %v", marked, err)
	}
}
