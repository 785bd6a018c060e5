package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// InvoiceDue is what the invoice workflow needs to know of its invoice.
type InvoiceDue struct {
	Open  bool
	DueAt time.Time
}

// ReadInvoiceDue reads whether the invoice is still open and when it is due.
func (a *Activities) ReadInvoiceDue(ctx context.Context, invoiceID string) (InvoiceDue, error) {
	st, err := a.Store.InvoiceStateOf(ctx, invoiceID)
	if errors.Is(err, store.ErrNotFound) {
		return InvoiceDue{}, temporal.NewNonRetryableApplicationError("invoice not found", "InvoiceNotFound", err)
	}
	if err != nil {
		return InvoiceDue{}, err
	}
	return InvoiceDue{Open: st.Status == invoice.StatusOpen, DueAt: st.DueAt}, nil
}

// MarkInvoiceOverdue writes the invoice's one invoice.overdue event if it
// is still open past its due date, and reports whether it did. Repeating
// it writes nothing more; the outbox sweeper hands the event to delivery.
func (a *Activities) MarkInvoiceOverdue(ctx context.Context, invoiceID string) (bool, error) {
	ref, err := a.Store.MarkOverdue(ctx, invoiceID)
	return ref != nil, err
}
