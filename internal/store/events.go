package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/deal"
)

// ErrUnknownEvent means the feed's "after" names no event the buyer may see.
var ErrUnknownEvent = errors.New("unknown event")

// BuyerEvents returns, oldest first, the deal events of the sellers that
// currently authorise buyer (events addressed to named accounts, such as
// invoices, are not in this feed), after the event with ID after (from the start
// when empty). Only events older than FeedSettle are shown, so that one
// committed late with an earlier timestamp is never skipped.
func (s *Store) BuyerEvents(ctx context.Context, buyer, after string, limit int) (events []deal.Event, more bool, err error) {
	args := []any{buyer, s.timestamp().Add(-s.FeedSettle), limit + 1}
	cond := ""
	if after != "" {
		var ok bool
		err := s.pool.QueryRow(ctx, `
			SELECT true FROM events e
			WHERE e.id = $1 AND NOT e.named AND EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = e.seller_id AND g.buyer_id = $2)`,
			after, buyer).Scan(&ok)
		if err != nil {
			if err = translate(err); errors.Is(err, ErrNotFound) {
				return nil, false, ErrUnknownEvent
			}
			return nil, false, err
		}
		args = append(args, after)
		cond = "AND (created_at, id) > ((SELECT created_at FROM events WHERE id = $4), $4)"
	}
	rows, err := s.pool.Query(ctx, `
		SELECT payload FROM events
		WHERE seller_id IN (SELECT seller_id FROM grants WHERE buyer_id = $1)
		  AND NOT named AND created_at < $2 `+cond+`
		ORDER BY created_at, id LIMIT $3`, args...)
	if err != nil {
		return nil, false, translate(err)
	}
	events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (deal.Event, error) {
		var ev deal.Event
		err := r.Scan(&ev)
		return ev, err
	})
	if err != nil {
		return nil, false, translate(err)
	}
	if len(events) > limit {
		return events[:limit], true, nil
	}
	return events, false, nil
}

// DealEvents returns every event of one deal, oldest first. Tests and
// operators use it to see exactly what a change recorded.
func (s *Store) DealEvents(ctx context.Context, dealID string) ([]deal.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT payload FROM events WHERE deal_id = $1 ORDER BY deal_version, created_at`, dealID)
	if err != nil {
		return nil, translate(err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deal.Event, error) {
		var ev deal.Event
		err := r.Scan(&ev)
		return ev, err
	})
	return events, translate(err)
}
