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

const seedBatch = 5000

// seeded is a seller set with authorised buyers and deals.
type seeded struct{ sellers, buyers, deals []string }

// seed makes sellers authorising every one of buyers, deals spread over
// the sellers, and, when urls is set, an endpoint urls[i] for buyer i;
// then brings the tables to the state autovacuum keeps them in.
func (s *Stack) seed(ctx context.Context, sellers, buyers, deals int, urls []string) (sd seeded, err error) {
	if sd.sellers, err = s.accounts(ctx, "sellers", sellers); err != nil {
		return sd, err
	}
	if sd.buyers, err = s.accounts(ctx, "buyers", buyers); err != nil {
		return sd, err
	}
	if err := s.grantAll(ctx, sd.sellers, sd.buyers); err != nil {
		return sd, err
	}
	if sd.deals, err = s.deals(ctx, sd.sellers, deals); err != nil {
		return sd, err
	}
	if urls != nil {
		if err := s.endpoints(ctx, sd.buyers, urls); err != nil {
			return sd, err
		}
	}
	// Planner statistics and the visibility map, so that index-only scans
	// need not visit the heap as they must in a table just bulk-loaded.
	_, err = s.pool.Exec(ctx, `VACUUM (ANALYZE)`)
	return sd, err
}

// batches calls f for each slice of at most seedBatch of n rows.
func batches(n int, f func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += seedBatch {
		if err := f(lo, min(lo+seedBatch, n)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) accounts(ctx context.Context, table string, n int) ([]string, error) {
	ids := newIDs(n)
	return ids, batches(n, func(lo, hi int) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO `+table+` (id, name, created_at)
			SELECT id, 'bench ' || $2 || ' ' || ord, now() FROM unnest($1::UUID[]) WITH ORDINALITY AS u (id, ord)`,
			ids[lo:hi], table)
		if err != nil {
			return fmt.Errorf("seed %s: %w", table, err)
		}
		return nil
	})
}

func (s *Stack) grantAll(ctx context.Context, sellers, buyers []string) error {
	for _, seller := range sellers {
		err := batches(len(buyers), func(lo, hi int) error {
			_, err := s.pool.Exec(ctx, `INSERT INTO grants (seller_id, buyer_id, created_at)
				SELECT $1, b, now() FROM unnest($2::UUID[]) AS b`, seller, buyers[lo:hi])
			return err
		})
		if err != nil {
			return fmt.Errorf("seed grants: %w", err)
		}
	}
	return nil
}

// deals inserts n deals round-robin over sellers, one millisecond apart
// (newest last). Seeded deals have no events.
func (s *Stack) deals(ctx context.Context, sellers []string, n int) ([]string, error) {
	items, err := deal.MarshalItems([]deal.Item{{ID: "i1", Name: "Item one", Price: 600}, {ID: "i2", Name: "Item two", Price: 400}})
	if err != nil {
		return nil, err
	}
	ids := newIDs(n)
	start := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC().Truncate(time.Millisecond)
	return ids, batches(n, func(lo, hi int) error {
		owners, times := make([]string, 0, hi-lo), make([]time.Time, 0, hi-lo)
		for i := lo; i < hi; i++ {
			owners = append(owners, sellers[i%len(sellers)])
			times = append(times, start.Add(time.Duration(i)*time.Millisecond))
		}
		_, err := s.pool.Exec(ctx, `
			INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, discount_type, discount_amount,
			                   status, items, version, created_at, updated_at)
			SELECT u.id, u.seller, 'Bench deal', 1000, 1000, 'gbp', NULL, NULL, 'available', $4::JSONB, 1, u.at, u.at
			FROM unnest($1::UUID[], $2::UUID[], $3::TIMESTAMPTZ[]) AS u (id, seller, at)`,
			ids[lo:hi], owners, times, items)
		if err != nil {
			return fmt.Errorf("seed deals: %w", err)
		}
		return nil
	})
}

// endpoints gives each buyer one enabled endpoint for every deal event.
// They share one sealed secret: the receivers do not check signatures,
// and delivery unseals each target's secret all the same.
func (s *Stack) endpoints(ctx context.Context, buyers, urls []string) error {
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	sealed, err := s.sealer.Seal(secret)
	if err != nil {
		return err
	}
	types := []string{string(deal.EventCreated), string(deal.EventUpdated)}
	return batches(len(buyers), func(lo, hi int) error {
		_, err := s.pool.Exec(ctx, `
			INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
			SELECT gen_random_uuid(), u.buyer, u.url, 'bench receiver', $3, true, $4, now(), now()
			FROM unnest($1::UUID[], $2::TEXT[]) AS u (buyer, url)`,
			buyers[lo:hi], urls[lo:hi], types, sealed)
		if err != nil {
			return fmt.Errorf("seed endpoints: %w", err)
		}
		return nil
	})
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
