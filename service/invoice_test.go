package service_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
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

// workflowStatus is the status of the invoice's workflow, waiting for it
// to be started by the dispatcher.
func (s *stack) invoiceWorkflow(t *testing.T, invoiceID string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	var status enumspb.WorkflowExecutionStatus
	eventually(t, 10*time.Second, "the invoice's workflow", func() bool {
		d, err := s.client.DescribeWorkflowExecution(context.Background(), invoice.WorkflowID(invoiceID), "")
		if err != nil {
			return false
		}
		status = d.GetWorkflowExecutionInfo().GetStatus()
		return true
	})
	return status
}

// An invoice left open past its due date gets one invoice.overdue; one
// paid in time gets none; both workflows end; starting one again changes
// nothing.
func TestInvoiceWorkflowSendsOverdueOnce(t *testing.T) {
	s := newStack(t)
	s.deps.InvoiceTerms = 2 * time.Second
	s.rebuild()
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)

	var unpaid, paid invoice.Invoice
	s.call(http.MethodPost, "/v1/deals/"+s.createDeal(sellerTok, 500).ID+"/purchase", buyerTok, nil, http.StatusCreated, &unpaid, "Idempotency-Key", "a")
	s.call(http.MethodPost, "/v1/deals/"+s.createDeal(sellerTok, 700).ID+"/purchase", buyerTok, nil, http.StatusCreated, &paid, "Idempotency-Key", "b")
	s.call(http.MethodPost, "/v1/invoices/"+paid.ID+"/payments", sellerTok, map[string]any{"amount": paid.Total, "reference": "r"}, http.StatusOK, nil)

	if st := s.invoiceWorkflow(t, unpaid.ID); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("unpaid invoice's workflow is %v", st)
	}
	ctx := context.Background()
	var marked bool
	if err := s.client.GetWorkflow(ctx, invoice.WorkflowID(unpaid.ID), "").Get(ctx, &marked); err != nil || !marked {
		t.Fatalf("unpaid invoice's workflow: marked %v, %v", marked, err)
	}
	if time.Now().Before(unpaid.DueAt) {
		t.Errorf("the notice came before the due date %v", unpaid.DueAt)
	}
	if err := s.client.GetWorkflow(ctx, invoice.WorkflowID(paid.ID), "").Get(ctx, &marked); err != nil || marked {
		t.Fatalf("paid invoice's workflow: marked %v, %v", marked, err)
	}
	if n := overdueEvents(t, unpaid.ID); n != 1 {
		t.Errorf("%d overdue events for the unpaid invoice, want 1", n)
	}
	// The unpaid invoice's run (read, timer, notice) is the history the
	// replay test in package workflows checks determinism against.
	if path := os.Getenv("WRITE_INVOICE_HISTORY"); path != "" {
		writeHistory(t, invoice.WorkflowID(unpaid.ID), path)
	}
	if n := overdueEvents(t, paid.ID); n != 0 {
		t.Errorf("%d overdue events for the paid invoice, want 0", n)
	}
	// A start repeated by the sweeper is refused as a duplicate, and
	// marking again writes nothing.
	if err := s.dispatcher.Start(ctx, store.EventRef{ID: "evt_again", Type: string(invoice.EventIssued), DealID: unpaid.DealID, InvoiceID: unpaid.ID}); err != nil {
		t.Fatal(err)
	}
	if ref, err := s.store.MarkOverdue(ctx, unpaid.ID); err != nil || ref != nil {
		t.Fatalf("marking again: %v, %v", ref, err)
	}
	if n := overdueEvents(t, unpaid.ID); n != 1 {
		t.Errorf("%d overdue events after a repeated start, want 1", n)
	}
}
