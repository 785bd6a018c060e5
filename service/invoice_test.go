package service_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// overdueEvents counts the invoice.overdue events in the outbox for one invoice.
func overdueEvents(t *testing.T, invoiceID string) int {
	t.Helper()
	var n int
	err := testDB.Pool.QueryRow(context.Background(), `
		SELECT count(*) FROM events WHERE type = 'invoice.overdue' AND payload->'data'->'invoice'->>'id' = $1`,
		invoiceID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// purchase buys a new deal of the seller's for the buyer.
func (s *stack) purchase(sellerTok, buyerTok string) invoice.Invoice {
	s.t.Helper()
	var inv invoice.Invoice
	s.call(http.MethodPost, "/v1/deals/"+s.createDeal(sellerTok, 500).ID+"/purchase", buyerTok, nil,
		http.StatusCreated, &inv, "Idempotency-Key", uuid.NewString())
	return inv
}

// awaitInvoiceWorkflow waits for the dispatcher to start the invoice's
// workflow and returns its run ID.
func (s *stack) awaitInvoiceWorkflow(t *testing.T, invoiceID string) string {
	t.Helper()
	runID := s.awaitWorkflow(t, invoice.WorkflowID(invoiceID))
	t.Cleanup(func() {
		if t.Failed() {
			s.logHistory(t, invoiceID)
		}
	})
	return runID
}

// awaitWorkflow waits for the dispatcher to start a workflow and returns
// its run ID.
func (s *stack) awaitWorkflow(t *testing.T, workflowID string) string {
	t.Helper()
	var runID string
	eventually(t, 30*time.Second, "workflow "+workflowID, func() bool {
		d, err := s.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
		runID = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return err == nil
	})
	return runID
}

// logHistory logs the invoice's workflow history, to tell a failed test's
// slow step from a wrong one.
func (s *stack) logHistory(t *testing.T, invoiceID string) {
	iter := s.client.GetWorkflowHistory(context.Background(), invoice.WorkflowID(invoiceID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Logf("invoice %s's history: %v", invoiceID, err)
			return
		}
		t.Logf("invoice %s: %s %v", invoiceID, ev.GetEventTime().AsTime().Format(time.StampMilli), ev.GetEventType())
	}
}

// invoiceResult waits up to timeout for the invoice's workflow to end and
// returns whether it wrote the overdue notice.
func (s *stack) invoiceResult(t *testing.T, invoiceID string, timeout time.Duration) bool {
	t.Helper()
	s.awaitInvoiceWorkflow(t, invoiceID)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var marked bool
	if err := s.client.GetWorkflow(ctx, invoice.WorkflowID(invoiceID), "").Get(ctx, &marked); err != nil {
		t.Fatalf("invoice %s's workflow: %v", invoiceID, err)
	}
	return marked
}

// workflowHas reports whether the workflow's history holds an event of type typ.
func (s *stack) workflowHas(t *testing.T, workflowID string, typ enumspb.EventType) bool {
	t.Helper()
	iter := s.client.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == typ {
			return true
		}
	}
	return false
}

// overdueArrivals are a receiver's invoice.overdue deliveries of an invoice.
func overdueArrivals(t *testing.T, r *webhooktest.Receiver, invoiceID string) []webhooktest.Arrival {
	t.Helper()
	var out []webhooktest.Arrival
	for _, a := range r.Arrivals() {
		var ev struct {
			Type string
			Data struct{ Invoice struct{ ID string } }
		}
		if err := json.Unmarshal(a.Body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == string(invoice.EventOverdue) && ev.Data.Invoice.ID == invoiceID {
			out = append(out, a)
		}
	}
	return out
}

// An invoice left open past its due date gets one invoice.overdue, at
// its buyer's and its seller's endpoints soon after the due date; neither
// a repeated start nor a second run of the workflow sends another.
func TestUnpaidInvoiceGetsOneOverdueNotice(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.deps.InvoiceTerms = 3 * time.Second
	s.rebuild()
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	rBuyer, rSeller := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	_, buyerSecret := s.endpoint(buyerTok, rBuyer.URL())
	_, sellerSecret := s.endpoint(sellerTok, rSeller.URL())

	inv := s.purchase(sellerTok, buyerTok)
	runID := s.awaitInvoiceWorkflow(t, inv.ID)
	if !s.invoiceResult(t, inv.ID, 30*time.Second) {
		t.Fatal("the unpaid invoice's workflow wrote no notice")
	}
	if time.Now().Before(inv.DueAt) {
		t.Errorf("the notice came before the due date %v", inv.DueAt)
	}
	// The activity hands the event to delivery itself: this stack runs no
	// sweeper, whose grace alone is 3 s.
	eventually(t, 30*time.Second, "the notice at both endpoints", func() bool {
		return len(overdueArrivals(t, rBuyer, inv.ID)) == 1 && len(overdueArrivals(t, rSeller, inv.ID)) == 1
	})
	for _, r := range []struct {
		who    string
		a      webhooktest.Arrival
		secret string
	}{{"buyer", overdueArrivals(t, rBuyer, inv.ID)[0], buyerSecret}, {"seller", overdueArrivals(t, rSeller, inv.ID)[0], sellerSecret}} {
		if !webhooktest.Verify(r.secret, r.a) {
			t.Errorf("the %s's notice does not verify", r.who)
		}
		var ev struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if err := json.Unmarshal(r.a.Body, &ev); err != nil {
			t.Fatal(err)
		}
		written, handed := ev.CreatedAt.Sub(inv.DueAt), r.a.At.Sub(ev.CreatedAt)
		t.Logf("invoice.overdue written %v after the due date, at the %s's endpoint %v later",
			written.Round(time.Millisecond), r.who, handed.Round(time.Millisecond))
		if written < 0 {
			t.Errorf("the notice was written %v before the due date", -written)
		}
		if handed > 2*time.Second {
			t.Errorf("the %s's notice arrived %v after it was written, want within 2s", r.who, handed)
		}
	}
	// The unpaid invoice's run (read, timer, notice) is the history the
	// replay test in package workflows checks determinism against.
	if path := os.Getenv("WRITE_INVOICE_HISTORY"); path != "" {
		writeHistory(t, invoice.WorkflowID(inv.ID), path)
	}

	// The sweeper handing invoice.issued over again is refused as a
	// duplicate; a second run (as after a reset) finds the notice written.
	ctx := context.Background()
	again := store.EventRef{ID: "evt_again_" + inv.ID, Type: string(invoice.EventIssued), DealID: inv.DealID, InvoiceID: inv.ID}
	if err := s.dispatcher.Start(ctx, again); err != nil {
		t.Fatal(err)
	}
	if d, err := s.client.DescribeWorkflowExecution(ctx, invoice.WorkflowID(inv.ID), ""); err != nil || d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != runID {
		t.Fatalf("after a repeated start: %v, %v; want the one run %s", d, err, runID)
	}
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: invoice.WorkflowID(inv.ID) + "-second", TaskQueue: s.taskQueue},
		invoice.WorkflowType, invoice.WorkflowInput{InvoiceID: inv.ID})
	if err != nil {
		t.Fatal(err)
	}
	var marked bool
	if err := run.Get(ctx, &marked); err != nil || marked {
		t.Fatalf("second run: marked %v, %v", marked, err)
	}
	if n := overdueEvents(t, inv.ID); n != 1 {
		t.Errorf("%d overdue events, want 1", n)
	}
	time.Sleep(300 * time.Millisecond) // a second notice would have arrived by now
	if nb, ns := len(overdueArrivals(t, rBuyer, inv.ID)), len(overdueArrivals(t, rSeller, inv.ID)); nb != 1 || ns != 1 {
		t.Errorf("notices: the buyer got %d, the seller %d; want 1 each", nb, ns)
	}
}

// A paid or voided invoice's workflow ends long before the due date and
// writes no notice: one is paid while its workflow sleeps (the signal
// wakes it), the other voided at once, which may reach the dispatcher
// before the workflow starts (its first read then finds the invoice void).
func TestSettledInvoicesWorkflowsEndEarly(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.deps.InvoiceTerms = time.Hour
	s.rebuild()
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)

	paid, voided := s.purchase(sellerTok, buyerTok), s.purchase(sellerTok, buyerTok)
	s.call(http.MethodPost, "/v1/invoices/"+voided.ID+"/void", sellerTok, nil, http.StatusOK, nil)
	s.awaitInvoiceWorkflow(t, paid.ID)
	eventually(t, 30*time.Second, "the paid invoice's workflow to sleep", func() bool {
		return s.workflowHas(t, invoice.WorkflowID(paid.ID), enumspb.EVENT_TYPE_TIMER_STARTED)
	})
	s.call(http.MethodPost, "/v1/invoices/"+paid.ID+"/payments", sellerTok, map[string]any{"amount": paid.Total, "reference": "r"}, http.StatusOK, nil)
	for _, inv := range []invoice.Invoice{paid, voided} {
		if s.invoiceResult(t, inv.ID, 30*time.Second) {
			t.Errorf("invoice %s: the workflow wrote a notice", inv.ID)
		}
		if n := overdueEvents(t, inv.ID); n != 0 {
			t.Errorf("invoice %s: %d overdue events, want 0", inv.ID, n)
		}
	}
	if !s.workflowHas(t, invoice.WorkflowID(paid.ID), enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) || !s.workflowHas(t, invoice.WorkflowID(paid.ID), enumspb.EVENT_TYPE_TIMER_CANCELED) {
		t.Error("the paid invoice's workflow did not end by the signal")
	}
	// The paid invoice's run (read, timer, signal, timer cancelled) is the
	// replay test's second history.
	if path := os.Getenv("WRITE_INVOICE_SETTLED_HISTORY"); path != "" {
		writeHistory(t, invoice.WorkflowID(paid.ID), path)
	}
}

// The sweeper does for invoices what the dispatcher's fast path does: an
// invoice.issued it finds starts the invoice's workflow, an invoice.paid
// or invoice.voided ends it, also when both are found in one sweep.
func TestSweeperStartsAndEndsInvoiceWorkflows(t *testing.T) {
	t.Parallel()
	// A database of its own, as in the other sweeping test: a sweep of the
	// shared one would start other tests' events on this task queue.
	db, err := dbtest.Create(context.Background(), "invoice_sweep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s := newStackOn(t, temporal.GetDefaultClient(), nil, db.Pool)
	s.deps.Delivery = nil // events wait in the outbox
	s.deps.InvoiceTerms = time.Hour
	s.rebuild()
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	ctx := context.Background()
	sweep := func() {
		t.Helper()
		if _, err := s.dispatcher.SweepOnce(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	paid := s.purchase(sellerTok, buyerTok)
	if _, err := s.client.DescribeWorkflowExecution(ctx, invoice.WorkflowID(paid.ID), ""); err == nil {
		t.Fatal("the invoice's workflow started without a dispatcher")
	}
	sweep()
	if !s.workflowHas(t, invoice.WorkflowID(paid.ID), enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) {
		t.Fatal("the sweep did not start the invoice's workflow")
	}
	s.call(http.MethodPost, "/v1/invoices/"+paid.ID+"/payments", sellerTok, map[string]any{"amount": paid.Total, "reference": "r"}, http.StatusOK, nil)
	sweep()

	voided := s.purchase(sellerTok, buyerTok)
	s.call(http.MethodPost, "/v1/invoices/"+voided.ID+"/void", sellerTok, nil, http.StatusOK, nil)
	sweep()
	for _, inv := range []invoice.Invoice{paid, voided} {
		if s.invoiceResult(t, inv.ID, 30*time.Second) {
			t.Errorf("invoice %s: the workflow wrote a notice", inv.ID)
		}
	}
}
