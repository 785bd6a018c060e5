package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/account"
	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/deal"
)

// Errors of auctions; callers match them with errors.Is or errors.As.
var (
	// ErrAuctionNotOpen means the auction takes no bids (not yet open,
	// past its close, closed or cancelled) or can no longer be closed.
	ErrAuctionNotOpen = errors.New("the auction is not open")
	// ErrAuctionHasBids means a cancellation came after the first bid.
	ErrAuctionHasBids = errors.New("the auction has bids")
)

// BidTooLowError refuses a bid under the auction's minimum.
type BidTooLowError struct{ Minimum int64 }

func (e *BidTooLowError) Error() string {
	return fmt.Sprintf("the bid is below the minimum of %d", e.Minimum)
}

// NewAuction is a seller's request to auction a deal.
type NewAuction struct {
	DealID string
	Seller string
	Draft  auction.Draft
	Idem   *Idempotency
}

// AuctionChange is an auction after a change and the events it wrote.
type AuctionChange struct {
	Auction  auction.Auction
	Replayed bool
	Events   []EventRef
}

// auctionColumns is the columns scanAuction reads, of alias a.
const auctionColumns = `a.id::TEXT, a.deal_id::TEXT, a.seller_id::TEXT, a.currency, a.start_price, a.min_increment,
	a.reserve_price, a.opens_at, a.closes_at, a.extend_seconds, a.status, a.outcome, a.bid_count, a.best_bid,
	a.leader_id::TEXT, a.invoice_id::TEXT, a.version, a.created_at, a.updated_at`

// scanAuction reads the columns of auctionColumns, then any extra ones into extra.
func scanAuction(row pgx.Row, extra ...any) (auction.Auction, error) {
	var a auction.Auction
	err := row.Scan(append([]any{&a.ID, &a.DealID, &a.Seller, &a.Currency, &a.StartPrice, &a.MinIncrement,
		&a.ReservePrice, &a.OpensAt, &a.ClosesAt, &a.ExtendSeconds, &a.Status, &a.Outcome, &a.BidCount, &a.BestBid,
		&a.Leader, &a.InvoiceID, &a.Version, &a.CreatedAt, &a.UpdatedAt}, extra...)...)
	for _, t := range []*time.Time{&a.OpensAt, &a.ClosesAt, &a.CreatedAt, &a.UpdatedAt} {
		*t = t.UTC()
	}
	a.Refresh()
	return a, err
}

// dbNow is the transaction's clock. Auctions are timed by the database,
// not by the process that asks: every bid and close compares with the
// same clock, under the auction's row lock.
const dbNow = "date_trunc('microseconds', now())"

// CreateAuction auctions a deal of the seller's, in one serializable
// transaction: a repeated Idempotency-Key returns the auction it made; a
// draft breaking a rule at the database's time is a
// *deal.ValidationError; ErrNotForSale when the deal is sold,
// ErrAuctionLive when it already has a scheduled or open auction. auction.created goes to the
// buyers the seller authorises and to the seller.
func (s *Store) CreateAuction(ctx context.Context, n NewAuction) (AuctionChange, error) {
	var out AuctionChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		out = AuctionChange{}
		var (
			live, invoiced bool
			now            time.Time
		)
		// A deal set available again while its invoice is open or paid
		// cannot be sold twice: an auction on it could never close.
		cur, err := scanDeal(tx.QueryRow(ctx, `SELECT `+dealColumns+`, live_auction_id IS NOT NULL,
			EXISTS (SELECT 1 FROM invoices i WHERE i.deal_id = deals.id AND i.status <> 'void'), `+dbNow+`
			FROM deals WHERE id = $1 AND seller_id = $2 FOR UPDATE`, n.DealID, n.Seller), &live, &invoiced, &now)
		if err != nil {
			return err
		}
		now = now.UTC()
		if n.Idem != nil {
			first, claimed, err := claimIdempotencyKey(ctx, tx, n.Seller, n.Idem, []byte("{}"), now)
			if err != nil {
				return err
			}
			if !claimed {
				out.Replayed = true
				return json.Unmarshal(first, &out.Auction)
			}
		}
		// By the database's clock; a refusal rolls the key's claim back.
		if err := n.Draft.Validate(now); err != nil {
			return err
		}
		switch {
		case cur.Status != deal.StatusAvailable, invoiced:
			return ErrNotForSale
		case live:
			return ErrAuctionLive
		}
		a := auction.New(uuid.NewString(), cur, n.Draft, now)
		if _, err := tx.Exec(ctx, `
			INSERT INTO auctions (id, deal_id, seller_id, currency, start_price, min_increment, reserve_price, opens_at,
			                      closes_at, extend_seconds, status, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)`,
			a.ID, a.DealID, a.Seller, a.Currency, a.StartPrice, a.MinIncrement, a.ReservePrice, a.OpensAt,
			a.ClosesAt, a.ExtendSeconds, string(a.Status), a.Version, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deals SET live_auction_id = $2 WHERE id = $1`, cur.ID, a.ID); err != nil {
			return err
		}
		events, err := announce(ctx, tx, auction.EventCreated, a, nil, now)
		if err != nil {
			return err
		}
		if n.Idem != nil {
			response, err := json.Marshal(a.SellerCopy())
			if err != nil {
				return err
			}
			if err := setIdempotentResponse(ctx, tx, n.Seller, n.Idem, response); err != nil {
				return err
			}
		}
		out.Auction, out.Events = a.SellerCopy(), events
		return nil
	})
	if isUniqueViolation(err) {
		return AuctionChange{}, ErrAuctionLive
	}
	return out, err
}

// announce writes an auction event twice: a buyer's copy for every buyer
// the seller authorises, and the seller's copy for the seller. previous,
// when set, is the auction before the change. The seller's copy carries
// the auction's ID in its reference when the auction's workflow must hear
// of it (created, or ended by a request).
func announce(ctx context.Context, tx execer, t auction.EventType, a auction.Auction, previous *auction.Auction, now time.Time) ([]EventRef, error) {
	var refs []EventRef
	for _, forSeller := range []bool{false, true} {
		copyOf := auction.Auction.Public
		if forSeller {
			copyOf = auction.Auction.SellerCopy
		}
		ev := auction.NewEvent(t, copyOf(a), now)
		if previous != nil {
			prev, err := auction.Previous(copyOf(*previous), ev.Data.Auction)
			if err != nil {
				return nil, err
			}
			ev.Data.Previous = prev
		}
		var recipients []string
		ref := EventRef{ID: ev.ID, Type: string(t), DealID: a.DealID}
		if forSeller {
			recipients = []string{a.Seller}
			if t == auction.EventCreated || !a.Status.Live() {
				ref.AuctionID = a.ID
			}
		}
		if err := insertEvent(ctx, tx, outboxEvent{ID: ev.ID, Type: string(t), DealID: a.DealID, SellerID: a.Seller,
			Payload: ev, CreatedAt: now}, recipients...); err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// lockAuction reads an auction for a change, locked for the rest of tx,
// with the transaction's clock. cond limits the rows (alias a), its
// arguments following the auction's ID.
func lockAuction(ctx context.Context, tx pgx.Tx, id, cond string, args ...any) (auction.Auction, time.Time, error) {
	var now time.Time
	a, err := scanAuction(tx.QueryRow(ctx, `SELECT `+auctionColumns+`, `+dbNow+` FROM auctions a
		WHERE a.id = $1 AND `+cond+` FOR UPDATE`, append([]any{id}, args...)...), &now)
	return a, now.UTC(), err
}

// writeAuction stores a changed auction (its version already bumped).
func writeAuction(ctx context.Context, tx pgx.Tx, a auction.Auction) error {
	var outcome *string
	if a.Outcome != nil {
		o := string(*a.Outcome)
		outcome = &o
	}
	_, err := tx.Exec(ctx, `
		UPDATE auctions SET closes_at = $2, status = $3, outcome = $4, bid_count = $5, best_bid = $6, leader_id = $7,
		       invoice_id = $8, version = $9, updated_at = $10
		WHERE id = $1`,
		a.ID, a.ClosesAt, string(a.Status), outcome, a.BidCount, a.BestBid, a.Leader, a.InvoiceID, a.Version, a.UpdatedAt)
	return err
}

// PlaceBidRequest is a buyer's bid.
type PlaceBidRequest struct {
	AuctionID string
	Buyer     string
	Amount    int64
	Idem      Idempotency
}

// bidEvents writes what an accepted bid announces: bid.placed (with the
// bidder) to the seller, bid.outbid to the buyer that lost the lead, and
// auction.updated to every authorised buyer and the seller.
func bidEvents(ctx context.Context, tx execer, prev, next auction.Auction, bid auction.Bid, buyer string, now time.Time) ([]EventRef, error) {
	placed := auction.NewEvent(auction.EventBidPlaced, next.SellerCopy(), now)
	withBuyer := bid
	withBuyer.Buyer = buyer
	placed.Data.Bid = &withBuyer
	named := []struct {
		ev auction.Event
		to string
	}{{placed, next.Seller}}
	if prev.Leader != nil && *prev.Leader != buyer {
		named = append(named, struct {
			ev auction.Event
			to string
		}{auction.NewEvent(auction.EventOutbid, next.For(*prev.Leader, true), now), *prev.Leader})
	}
	var refs []EventRef
	for _, n := range named {
		if err := insertEvent(ctx, tx, outboxEvent{ID: n.ev.ID, Type: string(n.ev.Type), DealID: next.DealID,
			SellerID: next.Seller, Payload: n.ev, CreatedAt: now}, n.to); err != nil {
			return nil, err
		}
		refs = append(refs, EventRef{ID: n.ev.ID, Type: string(n.ev.Type), DealID: next.DealID})
	}
	updated, err := announce(ctx, tx, auction.EventUpdated, next, &prev, now)
	return append(refs, updated...), err
}

// CloseAuction is the seller by closing its auction now, in one
// serializable transaction: the best bid wins if it meets the reserve
// (the deal is sold to its buyer through the path of a purchase: invoice,
// invoice.issued); otherwise the deal stays available. auction.closed goes
// to every authorised buyer and the seller. An auction that is not live
// is ErrAuctionNotOpen. The auction's clock closes through
// CloseDueAuctions.
func (s *Store) CloseAuction(ctx context.Context, id string, by Viewer, terms time.Duration) (AuctionChange, error) {
	defer s.lockSales(ctx, "auctions", id)()
	var out AuctionChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		a, now, err := lockAuction(ctx, tx, id, "a.seller_id = $2", by.ID)
		if err != nil {
			return err
		}
		out, err = s.closeLocked(ctx, tx, a, now, true, terms)
		return err
	})
	return out, err
}

// maxClosesPerTx bounds how many due auctions one close takes with it.
const maxClosesPerTx = 64

// CloseDueAuctions is the auction's clock closing auction id once its
// closes_at has passed by the database's clock (otherwise it returns the
// auction unchanged, still live; a closed one as it is), and in the same
// transaction every
// other auction of its seller whose closes_at has passed by the
// database's clock (up to maxClosesPerTx): when many close in the same
// second, the first workflow to wake closes them all in one commit, and
// the others find theirs closed. It returns the auction id's change and
// the events of every close.
func (s *Store) CloseDueAuctions(ctx context.Context, id string, terms time.Duration) (own AuctionChange, events []EventRef, err error) {
	defer s.lockSales(ctx, "auctions", id)()
	err = s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		own, events = AuctionChange{}, nil
		a, now, err := lockAuction(ctx, tx, id, "true")
		if err != nil {
			return err
		}
		// In ID order, so two processes' closes cannot wait on each other.
		rows, err := tx.Query(ctx, `SELECT `+auctionColumns+` FROM auctions a
			WHERE a.seller_id = $1 AND a.status IN ('scheduled', 'open') AND a.closes_at <= `+dbNow+` AND a.id <> $2
			ORDER BY a.id LIMIT $3 FOR UPDATE`, a.Seller, a.ID, maxClosesPerTx-1)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auction.Auction, error) { return scanAuction(r) })
		if err != nil {
			return err
		}
		if own, err = s.closeLocked(ctx, tx, a, now, false, terms); err != nil {
			return err
		}
		events = own.Events
		for _, d := range due {
			ch, err := s.closeLocked(ctx, tx, d, now, false, terms)
			if err != nil {
				return err
			}
			events = append(events, ch.Events...)
		}
		return nil
	})
	return own, events, err
}

// closeLocked closes a, locked by tx, at the transaction's time now: by
// its seller (bySeller) or by its clock, which closes only once closes_at
// has passed and otherwise returns a unchanged.
func (s *Store) closeLocked(ctx context.Context, tx pgx.Tx, a auction.Auction, now time.Time, bySeller bool, terms time.Duration) (AuctionChange, error) {
	out := AuctionChange{Auction: a.SellerCopy()}
	if !a.Status.Live() {
		if bySeller {
			return out, ErrAuctionNotOpen
		}
		return out, nil
	}
	if !bySeller && now.Before(a.ClosesAt) {
		return out, nil
	}
	next := a
	outcome := a.Decide()
	next.Status, next.Outcome, next.Version, next.UpdatedAt = auction.StatusClosed, &outcome, a.Version+1, now
	d, err := scanDeal(tx.QueryRow(ctx, `SELECT `+dealColumns+` FROM deals WHERE id = $1 FOR UPDATE`, a.DealID))
	if err != nil {
		return out, err
	}
	if _, err := tx.Exec(ctx, `UPDATE deals SET live_auction_id = NULL WHERE id = $1`, a.DealID); err != nil {
		return out, err
	}
	if outcome == auction.OutcomeWon {
		inv, events, err := s.sell(ctx, tx, d, *a.Leader, *a.BestBid, &a.ID, now, terms)
		if err != nil {
			return out, err
		}
		next.InvoiceID = &inv.ID
		out.Events = events
	}
	next.Refresh()
	if err := writeAuction(ctx, tx, next); err != nil {
		return out, err
	}
	closed, err := announce(ctx, tx, auction.EventClosed, next, nil, now)
	if err != nil {
		return out, err
	}
	out.Auction, out.Events = next.SellerCopy(), append(closed, out.Events...)
	return out, nil
}

// OpenAuction opens a scheduled auction once opens_at has passed by the
// database's clock, with auction.updated to everyone; otherwise it returns
// the auction unchanged. A bid opens it too, so a late clock delays no bid.
func (s *Store) OpenAuction(ctx context.Context, id string) (AuctionChange, error) {
	var out AuctionChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		out = AuctionChange{}
		a, now, err := lockAuction(ctx, tx, id, "true")
		if err != nil {
			return err
		}
		out.Auction = a.SellerCopy()
		if a.Status != auction.StatusScheduled || now.Before(a.OpensAt) {
			return nil
		}
		next := a
		next.Status, next.Version, next.UpdatedAt = auction.StatusOpen, a.Version+1, now
		if err := writeAuction(ctx, tx, next); err != nil {
			return err
		}
		events, err := announce(ctx, tx, auction.EventUpdated, next, &a, now)
		out.Auction, out.Events = next.SellerCopy(), events
		return err
	})
	return out, err
}

// CancelAuction cancels a live auction without bids (ErrAuctionHasBids
// otherwise) of v's (its seller, or any for an operator); the deal is free
// again. auction.updated goes to everyone.
func (s *Store) CancelAuction(ctx context.Context, v Viewer, id string) (AuctionChange, error) {
	var out AuctionChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		out = AuctionChange{}
		args := []any{}
		cond := auctionViewer(v, &args, 1)
		if v.Role == account.RoleBuyer {
			cond = "false"
		}
		a, now, err := lockAuction(ctx, tx, id, cond, args...)
		if err != nil {
			return err
		}
		switch {
		case !a.Status.Live():
			return ErrAuctionNotOpen
		case a.BidCount > 0:
			return ErrAuctionHasBids
		}
		next := a
		next.Status, next.Version, next.UpdatedAt = auction.StatusCancelled, a.Version+1, now
		if err := writeAuction(ctx, tx, next); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE deals SET live_auction_id = NULL WHERE id = $1`, a.DealID); err != nil {
			return err
		}
		events, err := announce(ctx, tx, auction.EventUpdated, next, &a, now)
		out.Auction, out.Events = next.SellerCopy(), events
		return err
	})
	return out, err
}

// auctionViewer limits auctions (alias a) to those v may see: a seller's
// own, those of the sellers that authorise a buyer, any for an operator.
// Its arguments are appended to args, numbered after the first offset.
func auctionViewer(v Viewer, args *[]any, offset int) string {
	switch v.Role {
	case account.RoleSeller:
		*args = append(*args, v.ID)
		return fmt.Sprintf("a.seller_id = $%d", offset+len(*args))
	case account.RoleBuyer:
		*args = append(*args, v.ID)
		return fmt.Sprintf("EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = a.seller_id AND g.buyer_id = $%d)", offset+len(*args))
	case account.RoleOperator:
		return "true"
	}
	return "false"
}

// viewOf is the copy of a that v sees.
func viewOf(v Viewer, a auction.Auction) auction.Auction {
	return a.For(v.ID, v.Role == account.RoleBuyer)
}

// Auction returns an auction v may see, as v sees it.
func (s *Store) Auction(ctx context.Context, v Viewer, id string) (auction.Auction, error) {
	args := []any{id}
	cond := auctionViewer(v, &args, 0)
	a, err := scanAuction(s.pool.QueryRow(ctx, `SELECT `+auctionColumns+` FROM auctions a WHERE a.id = $1 AND `+cond, args...))
	if err != nil {
		return auction.Auction{}, translate(err)
	}
	return viewOf(v, a), nil
}

// AuctionFilter narrows an auction list.
type AuctionFilter struct {
	DealID string
	Status auction.Status
}

// Auctions lists the auctions v may see, newest first.
func (s *Store) Auctions(ctx context.Context, v Viewer, f AuctionFilter, cursor string, limit int) (Page[auction.Auction], error) {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[auction.Auction]{}, err
	}
	var args []any
	where := []string{auctionViewer(v, &args, 0)}
	if f.DealID != "" {
		if _, err := uuid.Parse(f.DealID); err != nil {
			return Page[auction.Auction]{}, nil // names no deal
		}
		args = append(args, f.DealID)
		where = append(where, fmt.Sprintf("a.deal_id = $%d", len(args)))
	}
	if f.Status != "" {
		args = append(args, string(f.Status))
		where = append(where, fmt.Sprintf("a.status = $%d", len(args)))
	}
	if pos != nil {
		args = append(args, pos.At, pos.ID)
		where = append(where, fmt.Sprintf("(a.created_at, a.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM auctions a WHERE %s
		ORDER BY a.created_at DESC, a.id DESC LIMIT $%d`, auctionColumns, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return Page[auction.Auction]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auction.Auction, error) {
		a, err := scanAuction(r)
		return viewOf(v, a), err
	})
	if err != nil {
		return Page[auction.Auction]{}, translate(err)
	}
	return pageOf(list, limit, func(a auction.Auction) position { return position{At: a.CreatedAt, ID: a.ID} }), nil
}

// Bids lists an auction's bids v may see, newest first: every bid with
// its buyer for the seller (or an operator), a buyer's own for a buyer.
func (s *Store) Bids(ctx context.Context, v Viewer, auctionID, cursor string, limit int) (Page[auction.Bid], error) {
	a, err := s.Auction(ctx, v, auctionID)
	if err != nil {
		return Page[auction.Bid]{}, err
	}
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[auction.Bid]{}, err
	}
	args := []any{a.ID}
	where := "b.auction_id = $1"
	if v.Role == account.RoleBuyer {
		args = append(args, v.ID)
		where += " AND b.buyer_id = $2"
	}
	if pos != nil {
		args = append(args, pos.At, pos.ID)
		where += fmt.Sprintf(" AND (b.placed_at, b.id) < ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT b.id::TEXT, b.auction_id::TEXT, b.buyer_id::TEXT, b.amount, b.placed_at, b.seq
		FROM bids b WHERE %s ORDER BY b.placed_at DESC, b.id DESC LIMIT $%d`, where, len(args)), args...)
	if err != nil {
		return Page[auction.Bid]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auction.Bid, error) {
		var (
			b   auction.Bid
			seq int64
		)
		err := r.Scan(&b.ID, &b.AuctionID, &b.Buyer, &b.Amount, &b.PlacedAt, &seq)
		b.PlacedAt = b.PlacedAt.UTC()
		b.Leading = seq == a.BidCount
		if v.Role == account.RoleBuyer {
			b.Buyer = ""
		}
		return b, err
	})
	if err != nil {
		return Page[auction.Bid]{}, translate(err)
	}
	return pageOf(list, limit, func(b auction.Bid) position { return position{At: b.PlacedAt, ID: b.ID} }), nil
}

// AuctionClock is what the auction's workflow needs to know of it.
type AuctionClock struct {
	Status   auction.Status
	OpensAt  time.Time
	ClosesAt time.Time
}

// AuctionClockOf returns an auction's status and deadlines.
func (s *Store) AuctionClockOf(ctx context.Context, id string) (AuctionClock, error) {
	var c AuctionClock
	err := s.pool.QueryRow(ctx, `SELECT status, opens_at, closes_at FROM auctions WHERE id = $1`, id).
		Scan(&c.Status, &c.OpensAt, &c.ClosesAt)
	c.OpensAt, c.ClosesAt = c.OpensAt.UTC(), c.ClosesAt.UTC()
	return c, translate(err)
}
