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

// Seeding writes straight to the tables in multi-row statements: the
// scenarios measure the API, not how fast it can be filled, and 10,000
// buyers or 100,000 deals through the API would take longer than the
// measurements themselves. The rows are the ones the API would write.

// seedBatch is how many rows one seeding statement writes.
const seedBatch = 5000

// dealItems are the items of every seeded deal: total 1000 pence.
var dealItems = []deal.Item{{ID: "i1", Name: "Item one", Price: 600}, {ID: "i2", Name: "Item two", Price: 400}}

const dealTotal = 1000

// accounts inserts n sellers or buyers and returns their IDs.
func (s *Stack) accounts(ctx context.Context, role store.Role, n int) ([]string, error) {
	table := "buyers"
	if role == store.RoleSeller {
		table = "sellers"
	}
	ids := newIDs(n)
	for lo := 0; lo < n; lo += seedBatch {
		hi := min(lo+seedBatch, n)
		_, err := s.pool.Exec(ctx, `INSERT INTO `+table+` (id, name, created_at)
			SELECT id, 'bench ' || $2 || ' ' || ord, now() FROM unnest($1::UUID[]) WITH ORDINALITY AS u (id, ord)`,
			ids[lo:hi], string(role))
		if err != nil {
			return nil, fmt.Errorf("seed %s: %w", table, err)
		}
	}
	return ids, nil
}

// grantAll lets every buyer see every seller's deals.
func (s *Stack) grantAll(ctx context.Context, sellers, buyers []string) error {
	for _, seller := range sellers {
		for lo := 0; lo < len(buyers); lo += seedBatch {
			hi := min(lo+seedBatch, len(buyers))
			_, err := s.pool.Exec(ctx, `INSERT INTO grants (seller_id, buyer_id, created_at)
				SELECT $1, b, now() FROM unnest($2::UUID[]) AS b`, seller, buyers[lo:hi])
			if err != nil {
				return fmt.Errorf("seed grants: %w", err)
			}
		}
	}
	return nil
}

// deals inserts n deals spread round-robin over sellers, one millisecond
// apart (newest last), and returns their IDs. Seeded deals have no events.
func (s *Stack) deals(ctx context.Context, sellers []string, n int) ([]string, error) {
	items, err := deal.MarshalItems(dealItems)
	if err != nil {
		return nil, err
	}
	ids := newIDs(n)
	start := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC().Truncate(time.Millisecond)
	for lo := 0; lo < n; lo += seedBatch {
		hi := min(lo+seedBatch, n)
		owners := make([]string, 0, hi-lo)
		times := make([]time.Time, 0, hi-lo)
		for i := lo; i < hi; i++ {
			owners = append(owners, sellers[i%len(sellers)])
			times = append(times, start.Add(time.Duration(i)*time.Millisecond))
		}
		_, err := s.pool.Exec(ctx, `
			INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, discount_type, discount_amount,
			                   status, items, version, created_at, updated_at)
			SELECT u.id, u.seller, 'Bench deal', $4, $4, 'gbp', NULL, NULL, 'available', $5::JSONB, 1, u.at, u.at
			FROM unnest($1::UUID[], $2::UUID[], $3::TIMESTAMPTZ[]) AS u (id, seller, at)`,
			ids[lo:hi], owners, times, dealTotal, items)
		if err != nil {
			return nil, fmt.Errorf("seed deals: %w", err)
		}
	}
	return ids, nil
}

// endpoints gives each buyer one enabled endpoint for every event type;
// the endpoint of buyers[i] is urls[i]. They share one sealed secret: the
// receivers do not check signatures, and delivery unseals each target's
// secret all the same.
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
	for lo := 0; lo < len(buyers); lo += seedBatch {
		hi := min(lo+seedBatch, len(buyers))
		_, err := s.pool.Exec(ctx, `
			INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
			SELECT gen_random_uuid(), u.buyer, u.url, 'bench receiver', $3, true, $4, now(), now()
			FROM unnest($1::UUID[], $2::TEXT[]) AS u (buyer, url)`,
			buyers[lo:hi], urls[lo:hi], types, sealed)
		if err != nil {
			return fmt.Errorf("seed endpoints: %w", err)
		}
	}
	return nil
}

// analyze brings the seeded tables to the state autovacuum keeps them in
// under steady use: planner statistics refreshed, and the visibility map
// set, so that index-only scans (the buyer's list) need not visit the heap
// for each entry, as they must in a table just bulk-loaded.
func (s *Stack) analyze(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `VACUUM (ANALYZE)`)
	return err
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
		t, err := s.token(role, id)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}
