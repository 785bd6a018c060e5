package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// Seeding writes the rows the API would write straight to the tables in
// multi-row statements: 10,000 buyers or 100,000 deals through the API
// would take longer than the measurements.

// seeded is a seller set with authorised buyers and deals.
type seeded struct{ sellers, buyers, deals []string }

// seed makes sellers authorising every one of buyers, deals spread over
// the sellers, and, when urls is set, an endpoint urls[i] for buyer i for
// every deal event; then brings the tables to the state autovacuum keeps
// them in, so that index-only scans need not visit the heap.
func (s *Stack) seed(ctx context.Context, sellers, buyers, deals int, urls []string) (sd seeded, err error) {
	if sd.sellers, err = s.accounts(ctx, "sellers", sellers); err != nil {
		return sd, err
	}
	if sd.buyers, err = s.accounts(ctx, "buyers", buyers); err != nil {
		return sd, err
	}
	for _, seller := range sd.sellers {
		if err := s.insert(ctx, "grants", len(sd.buyers), `INSERT INTO grants (seller_id, buyer_id, created_at)
			SELECT $1, b, now() FROM unnest($2::UUID[]) AS b`, func(lo, hi int) []any { return []any{seller, sd.buyers[lo:hi]} }); err != nil {
			return sd, err
		}
	}
	sd.deals = newIDs(deals)
	items, _ := deal.MarshalItems([]deal.Item{{ID: "i1", Name: "Item one", Price: 600}, {ID: "i2", Name: "Item two", Price: 400}})
	// One millisecond apart, newest last; seeded deals have no events.
	start := time.Now().Add(-time.Duration(deals) * time.Millisecond).UTC().Truncate(time.Millisecond)
	err = s.insert(ctx, "deals", deals, `
		INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, status, items, version, created_at, updated_at)
		SELECT u.id, u.seller, 'Bench deal', 1000, 1000, 'gbp', 'available', $4::JSONB, 1, u.at, u.at
		FROM unnest($1::UUID[], $2::UUID[], $3::TIMESTAMPTZ[]) AS u (id, seller, at)`, func(lo, hi int) []any {
		var owners []string
		var times []time.Time
		for i := lo; i < hi; i++ {
			owners, times = append(owners, sd.sellers[i%len(sd.sellers)]), append(times, start.Add(time.Duration(i)*time.Millisecond))
		}
		return []any{sd.deals[lo:hi], owners, times, items}
	})
	if err == nil && urls != nil {
		err = s.endpoints(ctx, sd.buyers, urls)
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, `VACUUM (ANALYZE)`)
	}
	return sd, err
}

// endpoints gives buyer i an endpoint urls[i] for every deal event.
func (s *Stack) endpoints(ctx context.Context, buyers, urls []string) error {
	// The endpoints share one sealed secret: the receivers do not check
	// signatures, and delivery unseals each target's secret all the same.
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	sealed, err := s.proc.Sealer.Seal(secret)
	if err != nil {
		return err
	}
	types := []string{string(deal.EventCreated), string(deal.EventUpdated)}
	return s.insert(ctx, "endpoints", len(buyers), `
		INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
		SELECT gen_random_uuid(), u.buyer, u.url, 'bench receiver', $3, true, $4, now(), now()
		FROM unnest($1::UUID[], $2::TEXT[]) AS u (buyer, url)`, func(lo, hi int) []any {
		return []any{buyers[lo:hi], urls[lo:hi], types, sealed}
	})
}

// insert runs sql for each batch of at most 5,000 of n rows, with the
// arguments args gives for rows lo..hi.
func (s *Stack) insert(ctx context.Context, what string, n int, sql string, args func(lo, hi int) []any) error {
	for lo := 0; lo < n; lo += 5000 {
		if _, err := s.pool.Exec(ctx, sql, args(lo, min(lo+5000, n))...); err != nil {
			return fmt.Errorf("seed %s: %w", what, err)
		}
	}
	return nil
}

func (s *Stack) accounts(ctx context.Context, table string, n int) ([]string, error) {
	ids := newIDs(n)
	return ids, s.insert(ctx, table, n, `INSERT INTO `+table+` (id, name, created_at)
		SELECT id, 'bench ' || $2 || ' ' || ord, now() FROM unnest($1::UUID[]) WITH ORDINALITY AS u (id, ord)`,
		func(lo, hi int) []any { return []any{ids[lo:hi], table} })
}

func newIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	return ids
}

// tokens mints one token per account.
func (s *Stack) tokens(role store.Role, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		var err error
		if out[i], err = s.token(role, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}
