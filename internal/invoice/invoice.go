// Package invoice holds what an invoice is: its lines, its number's form,
// its states and the events that announce it. Like package deal it does no
// I/O; the store persists invoices in the transaction of the sale.
package invoice

import (
	"fmt"
	"time"

	"github.com/dealcast/dealcast/internal/deal"
)

// Status is where an invoice stands.
type Status string

// The statuses of an invoice. An open invoice becomes paid or void; both
// are final.
const (
	StatusOpen Status = "open"
	StatusPaid Status = "paid"
	StatusVoid Status = "void"
)

// Line is one line of an invoice.
type Line struct {
	Description string `json:"description" doc:"What the line charges for: an item's name, or the adjustment to the price paid." example:"Gloves"`
	Amount      int64  `json:"amount" doc:"In the currency's minor unit; negative for a discount." example:"4000"`
}

// Invoice is the record of one sale, as its buyer and seller see it.
type Invoice struct {
	ID        string     `json:"id" format:"uuid" doc:"Invoice ID."`
	Number    string     `json:"number" doc:"Per seller, consecutive from INV-000001 with no gaps." example:"INV-000001"`
	Seller    string     `json:"seller" format:"uuid" doc:"The seller who issued the invoice."`
	Buyer     string     `json:"buyer" format:"uuid" doc:"The buyer who owes it."`
	DealID    string     `json:"deal_id" format:"uuid" doc:"The deal sold."`
	AuctionID *string    `json:"auction_id" format:"uuid" doc:"The auction that sold the deal; null for a purchase at the price."`
	Currency  string     `json:"currency" doc:"ISO 4217 code, lowercase." example:"gbp"`
	Lines     []Line     `json:"lines" nullable:"false" doc:"The deal's items at their prices, then one line that brings the sum to the price paid when it differs."`
	Total     int64      `json:"total" doc:"The price paid, in minor units: the sum of the lines." example:"9000"`
	Status    Status     `json:"status" enum:"open,paid,void"`
	IssuedAt  time.Time  `json:"issued_at"`
	DueAt     time.Time  `json:"due_at" doc:"issued_at plus the platform's payment terms."`
	PaidAt    *time.Time `json:"paid_at" doc:"When the payment was recorded; null until then."`
	VoidedAt  *time.Time `json:"voided_at" doc:"When the invoice was voided; null unless void."`
	Version   int64      `json:"version" doc:"Starts at 1 and grows by one on every change." example:"1"`
}

// FormatNumber is the printed form of a seller's n-th invoice.
func FormatNumber(n int64) string { return fmt.Sprintf("INV-%06d", n) }

// Lines are the deal's items at their prices and, when the price paid
// differs from their sum, one line that brings the sum to it.
func Lines(d deal.Deal, paid int64) []Line {
	lines := make([]Line, 0, len(d.Items)+1)
	var sum int64
	for _, it := range d.Items {
		lines = append(lines, Line{Description: it.Name, Amount: it.Price})
		sum += it.Price
	}
	if diff := paid - sum; diff != 0 {
		lines = append(lines, Line{Description: adjustment(d, diff), Amount: diff})
	}
	return lines
}

// AuctionLines are the deal's items at their prices and, when the winning
// bid differs from their sum, one line that brings the sum to it.
func AuctionLines(d deal.Deal, won int64) []Line {
	lines := Lines(deal.Deal{Items: d.Items}, won)
	if len(lines) > len(d.Items) {
		lines[len(lines)-1].Description = "Auction result: the winning bid"
	}
	return lines
}

func adjustment(d deal.Deal, diff int64) string {
	switch {
	case d.Discount != nil && diff < 0 && d.Discount.Type == deal.DiscountPercentage:
		pct, _ := d.Discount.Amount.MarshalJSON()
		return fmt.Sprintf("Discount (%s%%)", pct)
	case d.Discount != nil && diff < 0:
		return "Discount"
	default:
		return "Adjustment to the price paid"
	}
}

// New is the open invoice for the sale of d to buyer at price, numbered
// number, issued at now and due after terms.
func New(id string, number int64, d deal.Deal, buyer string, price int64, now time.Time, terms time.Duration) Invoice {
	return Invoice{
		ID: id, Number: FormatNumber(number), Seller: d.Seller, Buyer: buyer, DealID: d.ID,
		Currency: d.Currency, Lines: Lines(d, price), Total: price, Status: StatusOpen,
		IssuedAt: now, DueAt: now.Add(terms), Version: 1,
	}
}
