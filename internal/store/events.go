package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/deal"
)

// ErrUnknownEvent means the feed's "after" names no event the caller may see.
var ErrUnknownEvent = errors.New("unknown event")

// FeedEvent is one event of a pull feed, its payload exactly as stored.
type FeedEvent struct {
	ID      string
	Payload []byte
}

// AccountEvents returns, oldest first, the events v may see after the
// event with ID after (from the start when empty): for a buyer, the deal
// events of the sellers that currently authorise it and the events
// addressed to it (its invoices); for a seller, the events addressed to
// it. Only events older than FeedSettle are shown, so that one committed
// late with an earlier timestamp is never skipped.
func (s *Store) AccountEvents(ctx context.Context, v Viewer, after string, limit int) (events []FeedEvent, more bool, err error) {
	if v.Role != RoleBuyer && v.Role != RoleSeller {
		return nil, false, nil
	}
	args := []any{v.ID, s.timestamp().Add(-s.FeedSettle), limit + 1}
	broadcastCond, namedCond := "", ""
	if after != "" {
		var at time.Time
		err := s.pool.QueryRow(ctx, `
			SELECT e.created_at FROM events e
			WHERE e.id = $1 AND (
			  EXISTS (SELECT 1 FROM event_recipients r WHERE r.event_id = e.id AND r.account_id = $2)
			  OR ($3 AND NOT e.named AND EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = e.seller_id AND g.buyer_id = $2)))`,
			after, v.ID, v.Role == RoleBuyer).Scan(&at)
		if err != nil {
			if err = translate(err); errors.Is(err, ErrNotFound) {
				return nil, false, ErrUnknownEvent
			}
			return nil, false, err
		}
		args = append(args, at, after)
		broadcastCond = "AND (e.created_at, e.id) > ($4, $5)"
		namedCond = "AND (r.created_at, r.event_id) > ($4, $5)"
	}
	named := `
		SELECT e.id, e.payload::TEXT, e.created_at FROM event_recipients r JOIN events e ON e.id = r.event_id
		WHERE r.account_id = $1 AND r.created_at < $2 ` + namedCond
	query := named
	if v.Role == RoleBuyer {
		query = `
		SELECT e.id, e.payload::TEXT, e.created_at FROM events e
		WHERE e.seller_id IN (SELECT seller_id FROM grants WHERE buyer_id = $1)
		  AND NOT e.named AND e.created_at < $2 ` + broadcastCond + `
		UNION ALL` + named
	}
	rows, err := s.pool.Query(ctx, `SELECT id, payload FROM (`+query+`) feed ORDER BY created_at, id LIMIT $3`, args...)
	if err != nil {
		return nil, false, translate(err)
	}
	events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeedEvent, error) {
		var ev FeedEvent
		err := r.Scan(&ev.ID, &ev.Payload)
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
