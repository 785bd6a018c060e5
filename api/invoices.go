package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// PurchaseInput is a buyer's order to buy a deal at its price.
type PurchaseInput struct {
	ID             string `path:"id" format:"uuid" doc:"Deal ID."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Required. Repeat a purchase safely: the same key for the same deal within 24 h returns the first invoice; the same key for another request is 409."`
	IfMatch        string `header:"If-Match" doc:"The deal version the buyer saw (its ETag); 412 if the deal has changed since."`
}

// InvoiceOutput is one invoice.
type InvoiceOutput struct {
	Location string `header:"Location" doc:"The invoice's URL (on purchase)."`
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response of an earlier request with the same Idempotency-Key."`
	Body     invoice.Invoice
}

// InvoicePath names one invoice.
type InvoicePath struct {
	ID string `path:"id" format:"uuid" doc:"Invoice ID."`
}

// ListInvoicesInput filters and pages invoices.
type ListInvoicesInput struct {
	Status invoice.Status `query:"status" enum:"open,paid,void" doc:"Only invoices in this status."`
	Pagination
}

// InvoiceListOutput is a page of invoices, newest first.
type InvoiceListOutput struct {
	Body ListBody[invoice.Invoice]
}

// PaymentInput records a payment of an invoice.
type PaymentInput struct {
	ID   string `path:"id" format:"uuid" doc:"Invoice ID."`
	Body struct {
		Amount    int64  `json:"amount" minimum:"0" doc:"What was paid, in minor units: must equal the invoice's total." example:"9000"`
		Reference string `json:"reference" minLength:"1" maxLength:"200" doc:"The payment's reference, such as a bank transfer's." example:"BACS 2026-12-04 0042"`
	}
}

// InvoicePDFOutput is an invoice's document.
type InvoicePDFOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               []byte
}

// viewer is the account of the request, as the store limits what it sees.
func viewer(ctx context.Context) store.Viewer {
	p := principal(ctx)
	return store.Viewer{Role: p.Role, ID: p.Subject}
}

func (h *handlers) registerInvoices(a huma.API) {
	huma.Register(a, huma.Operation{
		OperationID: "purchase-deal",
		Method:      http.MethodPost,
		Path:        "/v1/deals/{id}/purchase",
		Summary:     "Buy a deal at its price",
		Description: "A buyer the deal's seller authorises buys it at its net_price. The deal becomes sold (its version " +
			"grows by one and authorised buyers receive deal.updated), and an invoice with the seller's next number is " +
			"issued (invoice.issued to the buyer and the seller). Of concurrent purchases exactly one wins; the others get " +
			"409. Idempotency-Key is required.",
		Tags:          []string{"Trading"},
		Security:      secured(),
		DefaultStatus: http.StatusCreated,
		Errors: errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict,
			http.StatusPreconditionFailed, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *PurchaseInput) (*InvoiceOutput, error) {
		p, err := allow(ctx, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		if in.IdempotencyKey == "" {
			return nil, huma.Error400BadRequest("Idempotency-Key is required for a purchase")
		}
		if err := checkText("header.Idempotency-Key", in.IdempotencyKey); err != nil {
			return nil, err
		}
		ifMatch, err := parseIfMatch(in.IfMatch)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		// The request a key stands for: the deal and the version the buyer
		// saw, so the same key for another deal is a conflict.
		req, err := json.Marshal(struct {
			Deal    string `json:"deal"`
			IfMatch *int64 `json:"if_match"`
		}{canonicalID(in.ID), ifMatch})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		sale, err := h.store.Purchase(ctx, store.Purchase{DealID: in.ID, Buyer: p.Subject, IfMatch: ifMatch,
			Idem: store.Idempotency{Key: in.IdempotencyKey, Request: req}, Terms: h.invoiceTerms})
		if errors.Is(err, store.ErrIdempotencyConflict) {
			// A purchase has no body: what differs is the deal or If-Match.
			return nil, huma.Error409Conflict("this Idempotency-Key was used for another purchase (another deal or If-Match)")
		}
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, sale.Events)
		out := &InvoiceOutput{Location: "/v1/invoices/" + sale.Invoice.ID, Body: sale.Invoice}
		if sale.Replayed {
			out.Replayed = "true"
		}
		return out, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "list-invoices",
		Method:      http.MethodGet,
		Path:        "/v1/invoices",
		Summary:     "List invoices",
		Description: "A seller lists the invoices it issued, a buyer those it received, an operator every one. Newest first, " +
			"keyset-paginated.",
		Tags:     []string{"Trading"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListInvoicesInput) (*InvoiceListOutput, error) {
		page, err := h.store.Invoices(ctx, viewer(ctx), in.Status, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &InvoiceListOutput{Body: listBody(page, func(i invoice.Invoice) invoice.Invoice { return i })}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "get-invoice",
		Method:      http.MethodGet,
		Path:        "/v1/invoices/{id}",
		Summary:     "Get an invoice",
		Description: "Its seller, its buyer, or an operator. Anyone else gets 404.",
		Tags:        []string{"Trading"},
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *InvoicePath) (*InvoiceOutput, error) {
		inv, err := h.store.Invoice(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &InvoiceOutput{Body: inv}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "get-invoice-pdf",
		Method:      http.MethodGet,
		Path:        "/v1/invoices/{id}/pdf",
		Summary:     "Download an invoice as PDF",
		Description: "The invoice as a document: number, dates, both parties' names, the lines and the total in the " +
			"currency's format, and a PAID or VOID stamp once settled. One page for most invoices; a long one runs " +
			"onto further pages. Its seller, its buyer, or an operator.",
		Tags:     []string{"Trading"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
		Responses: map[string]*huma.Response{"200": {
			Description: "The invoice's document.",
			Content:     map[string]*huma.MediaType{"application/pdf": {Schema: &huma.Schema{Type: "string", Format: "binary"}}},
		}},
	}, func(ctx context.Context, in *InvoicePath) (*InvoicePDFOutput, error) {
		inv, parties, err := h.store.InvoiceWithParties(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		doc, err := invoice.PDF(inv, parties)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &InvoicePDFOutput{ContentType: "application/pdf",
			ContentDisposition: `inline; filename="` + inv.Number + `.pdf"`, Body: doc}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "pay-invoice",
		Method:      http.MethodPost,
		Path:        "/v1/invoices/{id}/payments",
		Summary:     "Record an invoice's payment",
		Description: "Its seller or an operator records that the invoice was paid: the amount must equal its total (422 " +
			"otherwise). The invoice becomes paid and invoice.paid goes to its buyer and seller. 409 unless it is open.",
		Tags:          []string{"Trading"},
		Security:      secured(),
		DefaultStatus: http.StatusOK,
		Errors: errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *PaymentInput) (*InvoiceOutput, error) {
		if _, err := allow(ctx, store.RoleSeller, store.RoleOperator); err != nil {
			return nil, err
		}
		if err := checkText("body.reference", in.Body.Reference); err != nil {
			return nil, err
		}
		ch, err := h.store.PayInvoice(ctx, viewer(ctx), in.ID, store.Payment{Amount: in.Body.Amount, Reference: in.Body.Reference})
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, ch.Events)
		return &InvoiceOutput{Body: ch.Invoice}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "void-invoice",
		Method:      http.MethodPost,
		Path:        "/v1/invoices/{id}/void",
		Summary:     "Void an invoice",
		Description: "Its seller or an operator voids an open invoice: it becomes void (invoice.voided to its buyer and " +
			"seller) and the deal returns to available (deal.updated to authorised buyers), so it can be sold again. " +
			"409 unless the invoice is open.",
		Tags:     []string{"Trading"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *InvoicePath) (*InvoiceOutput, error) {
		if _, err := allow(ctx, store.RoleSeller, store.RoleOperator); err != nil {
			return nil, err
		}
		ch, err := h.store.VoidInvoice(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, ch.Events)
		return &InvoiceOutput{Body: ch.Invoice}, nil
	})
}

// failTrade maps the errors of sales and invoice changes, then the rest
// as every operation does.
func (h *handlers) failTrade(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrNotForSale):
		return huma.Error409Conflict("the deal is not for sale: it is sold")
	case errors.Is(err, store.ErrAuctionLive):
		return huma.Error409Conflict("the deal has a scheduled or open auction: it cannot be bought, auctioned again " +
			"or changed (except its name) until the auction ends")
	case errors.Is(err, store.ErrAuctionNotOpen):
		return huma.Error409Conflict("the auction is not open: it is not yet open, past its close, closed or cancelled")
	case errors.Is(err, store.ErrAuctionHasBids):
		return huma.Error409Conflict("the auction has bids: bids are binding, so it can only be closed")
	case errors.Is(err, store.ErrInvoiceNotOpen):
		return huma.Error409Conflict("the invoice is not open: it is already paid or void")
	case errors.Is(err, store.ErrWrongAmount):
		return huma.Error422UnprocessableEntity("validation failed",
			&huma.ErrorDetail{Location: "body.amount", Message: "must equal the invoice's total"})
	}
	if tooLow := (*store.BidTooLowError)(nil); errors.As(err, &tooLow) {
		return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.amount",
			Message: fmt.Sprintf("must be at least the minimum_next_bid of %d", tooLow.Minimum)})
	}
	return h.fail(ctx, err)
}

// dispatchAll hands a committed change's events to delivery.
func (h *handlers) dispatchAll(ctx context.Context, events []store.EventRef) {
	for i := range events {
		h.dispatch(ctx, &events[i])
	}
}

// invoiceTermsOr is terms, or the default when unset.
func invoiceTermsOr(terms time.Duration) time.Duration {
	if terms <= 0 {
		return config.DefaultInvoiceTerms
	}
	return terms
}
