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

// InvoiceDue keeps an invoice's due date: it reads the invoice, sleeps on
// a durable timer until due_at, then has invoice.overdue written if the
// invoice is still open, and ends. A payment or void (SettledSignal) ends
// it early. The signal only shortens the wait: the database
// decides at the due date (MarkOverdue writes nothing for a paid or void
// invoice), so a lost signal cannot send a wrong notice. It reports
// whether it wrote the notice.
func InvoiceDue(ctx workflow.Context, in invoice.WorkflowInput) (bool, error) {
	// Retried until the database answers: the notice must not be lost.
	tx := transactions(ctx, "invoice-local-activities", 30*time.Second,
		&temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute})
	settled := workflow.GetSignalChannel(ctx, invoice.SettledSignal)
	var due activities.InvoiceDue
	if err := tx(readInvoiceDue, in.InvoiceID, &due); err != nil {
		return false, err
	}
	if !due.Open {
		return false, nil
	}
	// workflow.Now is when the task started, so a timer may fire a little
	// before due_at: the loop waits out the rest.
	for wait := due.DueAt.Sub(workflow.Now(ctx)); wait > 0; wait = due.DueAt.Sub(workflow.Now(ctx)) {
		early, err := signalledBefore(ctx, settled, wait)
		if err != nil || early {
			return false, err
		}
	}
	var marked bool
	err := tx(markInvoiceOverdue, in.InvoiceID, &marked)
	return marked, err
}

// signalledBefore waits for wait to pass or for a signal on ch, whichever
// comes first, and reports whether the signal came first (the timer is
// then cancelled).
func signalledBefore(ctx workflow.Context, ch workflow.ReceiveChannel, wait time.Duration) (bool, error) {
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var (
		early bool
		err   error
	)
	workflow.NewSelector(ctx).
		AddFuture(workflow.NewTimer(timerCtx, wait), func(f workflow.Future) { err = f.Get(ctx, nil) }).
		AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			// The payload (the event type) is for the history's reader;
			// not decoding it keeps a stray payload from failing the task.
			c.Receive(ctx, nil)
			early = true
		}).
		Select(ctx)
	return early, err
}

// transactions returns how a workflow runs its short database
// transactions (each safe to repeat). From version 1 of change on they are
// local activities: one runs in the workflow task that wants it, with no
// activity task to schedule and poll, which is what made many auctions
// closing at once late. A worker killed during one loses the workflow
// task, and the task's retry runs the transaction again. Histories
// recorded before the change replay with regular activities.
func transactions(ctx workflow.Context, change string, timeout time.Duration, retry *temporal.RetryPolicy) func(act, arg, out any) error {
	if workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: timeout, RetryPolicy: retry})
		return func(act, arg, out any) error { return workflow.ExecuteActivity(ctx, act, arg).Get(ctx, out) }
	}
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: timeout, RetryPolicy: retry})
	return func(act, arg, out any) error { return workflow.ExecuteLocalActivity(ctx, act, arg).Get(ctx, out) }
}
