package store

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestRecipientsReadOnlyTheSellersBuyersEndpoints: resolving the recipients
// of a seller whose buyers have no endpoints reads none of the platform's
// other endpoints, however many calls came before. A prepared statement's
// generic plan (PostgreSQL chooses it after five calls when it looks no
// dearer than their average) walked every endpoint in ID order instead,
// and on a platform with thousands of endpoints each such call cost
// milliseconds of database CPU.
func TestRecipientsReadOnlyTheSellersBuyersEndpoints(t *testing.T) {
	ctx := context.Background()
	const endpoints = 3000
	big := uuid.NewString()   // authorises every buyer with an endpoint
	small := uuid.NewString() // authorises a few buyers without one
	_, err := testDB.Pool.Exec(ctx, `
		WITH s AS (INSERT INTO sellers (id, name) VALUES ($1, 'many buyers'), ($2, 'few buyers') RETURNING id),
		     b AS (INSERT INTO buyers (id, name) SELECT gen_random_uuid(), 'recipient ' || i FROM generate_series(1, $3 + 5) i RETURNING id),
		     numbered AS (SELECT id, row_number() OVER () AS n FROM b),
		     g AS (INSERT INTO grants (seller_id, buyer_id, created_at)
		           SELECT CASE WHEN n <= $3 THEN $1::UUID ELSE $2::UUID END, id, now() FROM numbered RETURNING seller_id, buyer_id)
		INSERT INTO webhook_endpoints (id, buyer_id, url, event_types, secret, created_at, updated_at)
		SELECT gen_random_uuid(), buyer_id, 'https://example.com/hook', ARRAY['deal.created', 'deal.updated'], '\x00', now(), now()
		FROM g WHERE seller_id = $1`, big, small, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	// An event the big seller delivered to every endpoint: the deliveries
	// table is then nearly all succeeded rows, which is what made the
	// planner believe that hardly any endpoint lacks a finished delivery.
	_, err = testDB.Pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (id, event_id, endpoint_id, buyer_id, event_type, status, attempts, created_at, updated_at)
		SELECT gen_random_uuid(), $2, e.id, e.buyer_id, 'deal.updated', 'succeeded', 1, now(), now()
		FROM webhook_endpoints e JOIN grants g ON g.buyer_id = e.buyer_id AND g.seller_id = $1`, big, "evt_"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testDB.Pool.Exec(ctx, `ANALYZE grants, webhook_endpoints, webhook_deliveries`); err != nil {
		t.Fatal(err)
	}

	// One connection of its own, so every call meets the same statement
	// cache, and its statistics are flushed when it closes.
	app := "recipients-" + uuid.NewString()[:8]
	u, err := url.Parse(testDB.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	s := New(pool)

	before := endpointTuplesRead(t)
	// Six calls for the big seller make the average custom plan dear;
	// then come the small seller's calls, which a generic plan would spoil.
	for i := range 16 {
		seller := big
		if i >= 6 {
			seller = small
		}
		got, err := s.Recipients(ctx, EventRecord{ID: "evt_" + uuid.NewString(), Type: "deal.updated", SellerID: seller}, "", 500)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{big: 500, small: 0}[seller]; len(got) != want {
			t.Fatalf("call %d: %d recipients, want %d", i, len(got), want)
		}
	}
	pool.Close()
	waitGone(t, app)
	// A big seller's page reads at most every endpoint of the platform;
	// the small seller's ten calls should read none, where a walk of every
	// endpoint would read them all each time.
	read := endpointTuplesRead(t) - before
	var total int64
	if err := testDB.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if limit := 6*total + total/2; read > limit {
		t.Fatalf("16 recipient lookups read %d endpoint rows; six pages of the big seller account for at most %d", read, limit)
	}
}

// endpointTuplesRead is how many rows of webhook_endpoints scans have
// returned so far, as far as the statistics collector knows.
func endpointTuplesRead(t *testing.T) int64 {
	t.Helper()
	var n int64
	err := testDB.Pool.QueryRow(context.Background(), `
		SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0)
		FROM pg_stat_user_tables WHERE relname = 'webhook_endpoints'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitGone waits until no backend of application app is left: a backend
// flushes its statistics as it exits.
func waitGone(t *testing.T, app string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := testDB.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of %s still open", n, app)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
