package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/invoice"
)

var (
	readInvoiceDue     = (*activities.Activities)(nil).ReadInvoiceDue
	markInvoiceOverdue = (*activities.Activities)(nil).MarkInvoiceOverdue
)

// InvoiceDue keeps an invoice's due date: it sleeps on a durable timer
// until due_at, then has invoice.overdue written if the invoice is still
// open, and ends. It does not watch payments: the database decides at the
// due date (MarkOverdue writes nothing for a paid or void invoice), so a
// payment needs no signal and a lost one cannot send a wrong notice. It
// reports whether it wrote the notice.
func InvoiceDue(ctx workflow.Context, in invoice.WorkflowInput) (bool, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Retried until the database answers: the notice must not be lost.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var due activities.InvoiceDue
	if err := workflow.ExecuteActivity(ctx, readInvoiceDue, in.InvoiceID).Get(ctx, &due); err != nil {
		return false, err
	}
	if !due.Open {
		return false, nil
	}
	if wait := due.DueAt.Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return false, err
		}
	}
	var marked bool
	err := workflow.ExecuteActivity(ctx, markInvoiceOverdue, in.InvoiceID).Get(ctx, &marked)
	return marked, err
}
