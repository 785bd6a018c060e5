// Package auction holds what an auction and a bid are: the rules of
// creating one, the minimum a bid must reach, the anti-sniping extension,
// the outcome at the close, and who may see what. Like package deal it
// does no I/O; the store decides bids in the database.
package auction

import (
	"encoding/json"
	"time"

	"github.com/dealcast/dealcast/internal/deal"
)

// Status is where an auction stands. A scheduled auction opens at
// opens_at; an open one closes at closes_at (or when its seller closes it);
// closed and cancelled are final.
type Status string

// The statuses of an auction.
const (
	StatusScheduled Status = "scheduled"
	StatusOpen      Status = "open"
	StatusClosed    Status = "closed"
	StatusCancelled Status = "cancelled"
)

// Live reports whether the auction still holds its deal: scheduled or open.
func (s Status) Live() bool { return s == StatusScheduled || s == StatusOpen }

// Outcome is how a closed auction ended.
type Outcome string

// The outcomes of a closed auction.
const (
	OutcomeWon           Outcome = "won"
	OutcomeReserveNotMet Outcome = "reserve_not_met"
	OutcomeNoBids        Outcome = "no_bids"
)

// Limits of an auction's settings.
const (
	MaxDuration      = 90 * 24 * time.Hour
	MaxExtendSeconds = 3600
)

// Auction is an auction as its seller sees it. A buyer's copy (ForBuyer)
// leaves out reserve_price and winner when encoded.
type Auction struct {
	ID             string    `json:"id" format:"uuid" doc:"Auction ID."`
	DealID         string    `json:"deal_id" format:"uuid" doc:"The deal sold by the auction."`
	Seller         string    `json:"seller" format:"uuid" doc:"The deal's seller."`
	Currency       string    `json:"currency" doc:"The deal's currency, lowercase." example:"gbp"`
	StartPrice     int64     `json:"start_price" doc:"The lowest first bid, in minor units." example:"1000"`
	MinIncrement   int64     `json:"min_increment" doc:"How much every later bid must add to the best one, in minor units." example:"100"`
	ReservePrice   *int64    `json:"reserve_price" required:"false" doc:"The lowest winning bid; null when there is none. Only in the seller's copy." example:"5000"`
	ReserveMet     bool      `json:"reserve_met" doc:"Whether the best bid meets the reserve (true when there is no reserve and a bid)."`
	OpensAt        time.Time `json:"opens_at" doc:"When bidding opens."`
	ClosesAt       time.Time `json:"closes_at" doc:"When bidding closes; a late bid may move it (extend_seconds)."`
	ExtendSeconds  int       `json:"extend_seconds" doc:"A bid accepted within this many seconds of closes_at moves closes_at to its placed_at plus this." example:"60"`
	Status         Status    `json:"status" enum:"scheduled,open,closed,cancelled"`
	Outcome        *Outcome  `json:"outcome" enum:"won,reserve_not_met,no_bids" doc:"How it ended; null until closed."`
	BidCount       int64     `json:"bid_count" doc:"Accepted bids." example:"0"`
	BestBid        *int64    `json:"best_bid" doc:"The highest accepted bid; null before the first." example:"1200"`
	MinimumNextBid int64     `json:"minimum_next_bid" doc:"What the next bid must reach: start_price, then best_bid plus min_increment." example:"1300"`
	Leading        bool      `json:"leading" doc:"Whether the calling buyer holds the best bid; false for everyone else."`
	Winner         *string   `json:"winner" required:"false" format:"uuid" doc:"The buyer who won; null unless won. Only in the seller's copy."`
	InvoiceID      *string   `json:"invoice_id" format:"uuid" doc:"The winner's invoice; null unless won."`
	Version        int64     `json:"version" doc:"Starts at 1 and grows by one on every change." example:"1"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Leader is the buyer holding best_bid, never encoded: the seller sees
	// it as winner once the auction is won, a buyer as leading.
	Leader *string `json:"-"`
	// ForBuyer marks a buyer's copy, encoded without reserve_price and winner.
	ForBuyer bool `json:"-"`
}

// MarshalJSON encodes a buyer's copy without the seller's fields.
func (a Auction) MarshalJSON() ([]byte, error) {
	type plain Auction
	if !a.ForBuyer {
		return json.Marshal(plain(a))
	}
	// The outer fields hide the embedded ones of the same name.
	return json.Marshal(struct {
		plain
		ReservePrice *int64  `json:"reserve_price,omitempty"`
		Winner       *string `json:"winner,omitempty"`
	}{plain: plain(a)})
}

// Minimum is what the next bid must reach.
func (a Auction) Minimum() int64 {
	if a.BestBid == nil {
		return a.StartPrice
	}
	return *a.BestBid + a.MinIncrement
}

// Refresh sets the fields derived from the others.
func (a *Auction) Refresh() {
	a.MinimumNextBid = a.Minimum()
	a.ReserveMet = a.BestBid != nil && (a.ReservePrice == nil || *a.BestBid >= *a.ReservePrice)
	a.Winner = nil
	if a.Outcome != nil && *a.Outcome == OutcomeWon {
		a.Winner = a.Leader
	}
}

// For is the copy of a that account sees: a buyer's leaves out the
// seller's fields and says whether that buyer leads; anyone else's
// (buyer empty) leads nobody.
func (a Auction) For(buyer string, isBuyer bool) Auction {
	a.Refresh()
	a.ForBuyer = isBuyer
	a.Leading = isBuyer && buyer != "" && a.Leader != nil && *a.Leader == buyer
	return a
}

// Public is the copy every authorised buyer may receive: no reserve, no
// winner, and leading false.
func (a Auction) Public() Auction { return a.For("", true) }

// SellerCopy is the seller's copy.
func (a Auction) SellerCopy() Auction { return a.For("", false) }

// Extended is closes_at after a bid accepted at placedAt: moved to
// placedAt + extend_seconds when the bid came within extend_seconds of
// it, otherwise unchanged.
func (a Auction) Extended(placedAt time.Time) time.Time {
	ext := time.Duration(a.ExtendSeconds) * time.Second
	if ext > 0 && !placedAt.Before(a.ClosesAt.Add(-ext)) {
		if moved := placedAt.Add(ext); moved.After(a.ClosesAt) {
			return moved
		}
	}
	return a.ClosesAt
}

// Decide is the outcome of closing a: won when the best bid meets the
// reserve, otherwise reserve_not_met or no_bids.
func (a Auction) Decide() Outcome {
	switch {
	case a.BestBid == nil:
		return OutcomeNoBids
	case a.ReservePrice != nil && *a.BestBid < *a.ReservePrice:
		return OutcomeReserveNotMet
	}
	return OutcomeWon
}

// Bid is an accepted bid.
type Bid struct {
	ID        string    `json:"id" format:"uuid" doc:"Bid ID."`
	AuctionID string    `json:"auction_id" format:"uuid"`
	Buyer     string    `json:"buyer,omitempty" format:"uuid" doc:"The bidder; in the seller's view only."`
	Amount    int64     `json:"amount" doc:"In minor units." example:"1200"`
	PlacedAt  time.Time `json:"placed_at" doc:"The database's time when the bid was accepted."`
	Leading   bool      `json:"leading" doc:"Whether this bid is the auction's best."`
}

// Draft is a seller's request for an auction of a deal.
type Draft struct {
	StartPrice    int64
	MinIncrement  int64
	ReservePrice  *int64
	OpensAt       *time.Time
	ClosesAt      time.Time
	ExtendSeconds *int
}

// Validate checks d against the rules at now and lists every field that
// breaks one. A zero now skips the rules about the time (closes_at in the
// future and within 90 days), for a caller that checks them later with
// the database's clock.
func (d Draft) Validate(now time.Time) error {
	var errs []deal.FieldError
	bad := func(field, msg string, v any) {
		errs = append(errs, deal.FieldError{Field: field, Message: msg, Value: v})
	}
	if d.StartPrice <= 0 {
		bad("start_price", "must be greater than 0", d.StartPrice)
	}
	if d.MinIncrement <= 0 {
		bad("min_increment", "must be greater than 0", d.MinIncrement)
	}
	if d.ReservePrice != nil && *d.ReservePrice < d.StartPrice {
		bad("reserve_price", "must be at least start_price", *d.ReservePrice)
	}
	switch {
	case now.IsZero():
	case !d.ClosesAt.After(now):
		bad("closes_at", "must be in the future", d.ClosesAt)
	case d.ClosesAt.After(now.Add(MaxDuration)):
		bad("closes_at", "must be within 90 days", d.ClosesAt)
	}
	if d.OpensAt != nil && !d.OpensAt.Before(d.ClosesAt) {
		bad("opens_at", "must be before closes_at", *d.OpensAt)
	}
	if d.ExtendSeconds != nil && (*d.ExtendSeconds < 0 || *d.ExtendSeconds > MaxExtendSeconds) {
		bad("extend_seconds", "must be between 0 and 3600", *d.ExtendSeconds)
	}
	if len(errs) > 0 {
		return &deal.ValidationError{Fields: errs}
	}
	return nil
}

// New is the auction of d that draft describes, created at now: open at
// once unless opens_at is later.
func New(id string, d deal.Deal, draft Draft, now time.Time) Auction {
	a := Auction{
		ID: id, DealID: d.ID, Seller: d.Seller, Currency: d.Currency,
		StartPrice: draft.StartPrice, MinIncrement: draft.MinIncrement, ReservePrice: draft.ReservePrice,
		OpensAt: now, ClosesAt: draft.ClosesAt.UTC().Truncate(time.Microsecond), Status: StatusOpen,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if draft.OpensAt != nil && draft.OpensAt.After(now) {
		a.OpensAt, a.Status = draft.OpensAt.UTC().Truncate(time.Microsecond), StatusScheduled
	}
	if draft.ExtendSeconds != nil {
		a.ExtendSeconds = *draft.ExtendSeconds
	}
	a.Refresh()
	return a
}
