package invoice

// The invoice workflow as its starter sees it: package workflows
// implements it under WorkflowType; the dispatcher starts it when it hands
// over an invoice.issued event, so the start rides on the outbox.

// WorkflowType is the registered name of the invoice workflow.
const WorkflowType = "InvoiceDue"

// WorkflowID is an invoice's workflow: one per invoice, so a repeated start
// is recognised and refused by Temporal.
func WorkflowID(invoiceID string) string { return "invoice-" + invoiceID }

// WorkflowInput names the invoice whose due date the workflow keeps.
type WorkflowInput struct {
	InvoiceID string
}
