package invoice

// The invoice workflow as its starter sees it: package workflows
// implements it under WorkflowType; the dispatcher starts it when it hands
// over an invoice.issued event, and signals it when it hands over
// invoice.paid or invoice.voided, so both ride on the outbox.

// WorkflowType is the registered name of the invoice workflow.
const WorkflowType = "InvoiceDue"

// SettledSignal tells an invoice's workflow that the invoice was paid or
// voided (its payload is the event type), so it ends now rather than at
// the due date.
const SettledSignal = "invoice-settled"

// WorkflowID is an invoice's workflow: one per invoice, so a repeated start
// is recognised and refused by Temporal.
func WorkflowID(invoiceID string) string { return "invoice-" + invoiceID }

// WorkflowInput names the invoice whose due date the workflow keeps.
type WorkflowInput struct {
	InvoiceID string
}
