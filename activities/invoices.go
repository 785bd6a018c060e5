package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// Delivery queues an event for the start of its delivery without blocking
// (delivery.Dispatcher's Dispatch), so events of many activities share
// workflow starts; an event it cannot take stays in the outbox for the
// sweeper.
type Delivery interface {
	Dispatch(context.Context, store.EventRef)
}

// InvoiceDue is what the invoice workflow needs to know of its invoice.
type InvoiceDue struct {
	Open  bool
	DueAt time.Time
}

// ReadInvoiceDue reads whether the invoice is still open and when it is due.
func (a *Activities) ReadInvoiceDue(ctx context.Context, invoiceID string) (InvoiceDue, error) {
	st, err := a.invoiceState(ctx, invoiceID)
	if err != nil {
		return InvoiceDue{}, err
	}
	return InvoiceDue{Open: st.Status == invoice.StatusOpen, DueAt: st.DueAt}, nil
}

// MarkInvoiceOverdue writes the invoice's one invoice.overdue event if it
// is still open past its due date, hands it to delivery, and reports
// whether it wrote it. Repeating it writes nothing more.
func (a *Activities) MarkInvoiceOverdue(ctx context.Context, invoiceID string) (bool, error) {
	ref, err := a.Store.MarkOverdue(ctx, invoiceID)
	if err != nil {
		return false, err
	}
	if ref == nil {
		return false, a.notDue(ctx, invoiceID)
	}
	a.handOver(ctx, *ref)
	return true, nil
}

// handOver hands events an activity committed to delivery. A failed start
// is the sweeper's to repeat, not a reason to fail the activity.
func (a *Activities) handOver(ctx context.Context, events ...store.EventRef) {
	if a.Delivery == nil {
		return
	}
	for _, ev := range events {
		a.Delivery.Dispatch(ctx, ev)
	}
}

// notDue explains why MarkOverdue wrote nothing. An invoice still open and
// not yet marked is not due by this worker's clock, behind the server's
// that fired the timer: a retry at its due date, or the notice would be
// lost. Paid, void or already marked is done.
func (a *Activities) notDue(ctx context.Context, invoiceID string) error {
	st, err := a.invoiceState(ctx, invoiceID)
	if err != nil || st.Status != invoice.StatusOpen || st.Overdue {
		return err
	}
	return temporal.NewApplicationErrorWithOptions("the invoice is not due yet", "InvoiceNotDue",
		temporal.ApplicationErrorOptions{NextRetryDelay: max(time.Until(st.DueAt), 10*time.Millisecond)})
}

func (a *Activities) invoiceState(ctx context.Context, invoiceID string) (store.InvoiceState, error) {
	st, err := a.Store.InvoiceStateOf(ctx, invoiceID)
	if errors.Is(err, store.ErrNotFound) {
		return st, temporal.NewNonRetryableApplicationError("invoice not found", "InvoiceNotFound", err)
	}
	return st, err
}
