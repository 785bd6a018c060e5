package store

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestRecipientsReadOnlyTheSellersBuyersEndpoints: resolving the recipients
// of a seller whose buyers have no endpoints reads none of the platform's
// other endpoints, however many calls came before. A prepared statement's
// generic plan (PostgreSQL chooses it after five calls when it looks no
// dearer than their average) could walk every endpoint in ID order
// instead, so that each such call costs in proportion to the platform's
// endpoints rather than to the seller's.
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
	// table is then nearly all succeeded rows, which leads the planner to
	// believe that hardly any endpoint lacks a finished delivery.
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

// TestRecipientsPages: pages of any size list every recipient once, in
// buyer then endpoint order, leaving out endpoints that are disabled, not
// subscribed, of buyers not authorised, or already reached; a pending
// delivery stays, with its attempts. A cursor of the former form (an
// endpoint ID alone) starts the listing again.
func TestRecipientsPages(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	seller, other := uuid.NewString(), uuid.NewString()
	event := "evt_" + uuid.NewString()
	var want []string // "buyer/endpoint", filled in order below
	_, err := testDB.Pool.Exec(ctx, `INSERT INTO sellers (id, name) VALUES ($1, 'paged'), ($2, 'other')`, seller, other)
	if err != nil {
		t.Fatal(err)
	}
	type endpoint struct {
		enabled   bool
		types     []string
		delivery  string // "", "pending", "succeeded" or "failed"
		recipient bool
		attempts  int
	}
	buyers := [][]endpoint{
		{{enabled: true, types: []string{"deal.updated"}, recipient: true}, {enabled: true, types: []string{"deal.created", "deal.updated"}, recipient: true}},
		{}, // authorised, no endpoint
		{{enabled: false, types: []string{"deal.updated"}}, {enabled: true, types: []string{"deal.created"}}, {enabled: true, types: []string{"deal.updated"}, recipient: true}},
		{{enabled: true, types: []string{"deal.updated"}, delivery: "succeeded"}, {enabled: true, types: []string{"deal.updated"}, delivery: "pending", recipient: true, attempts: 2},
			{enabled: true, types: []string{"deal.updated"}, delivery: "failed"}, {enabled: true, types: []string{"deal.updated"}, recipient: true}},
	}
	buyerIDs := make([]string, len(buyers)+1)
	for i := range buyerIDs {
		buyerIDs[i] = uuid.NewString()
	}
	slices.Sort(buyerIDs[:len(buyers)])
	for i, eps := range buyers {
		b := buyerIDs[i]
		if _, err := testDB.Pool.Exec(ctx, `INSERT INTO buyers (id, name) VALUES ($1, 'paged buyer')`, b); err != nil {
			t.Fatal(err)
		}
		if _, err := testDB.Pool.Exec(ctx, `INSERT INTO grants (seller_id, buyer_id, created_at) VALUES ($1, $2, now())`, seller, b); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(eps))
		for j := range ids {
			ids[j] = uuid.NewString()
		}
		slices.Sort(ids)
		for j, e := range eps {
			_, err := testDB.Pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, buyer_id, url, event_types, enabled, secret, created_at, updated_at)
				VALUES ($1, $2, 'https://example.com/hook', $3, $4, '\x00', now(), now())`, ids[j], b, e.types, e.enabled)
			if err != nil {
				t.Fatal(err)
			}
			if e.delivery != "" {
				_, err := testDB.Pool.Exec(ctx, `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, buyer_id, event_type, status, attempts, created_at, updated_at)
					VALUES (gen_random_uuid(), $1, $2, $3, 'deal.updated', $4, $5, now(), now())`, event, ids[j], b, e.delivery, e.attempts)
				if err != nil {
					t.Fatal(err)
				}
			}
			if e.recipient {
				want = append(want, b+"/"+ids[j])
			}
		}
	}
	// A buyer with an endpoint that the seller does not authorise.
	stranger := buyerIDs[len(buyers)]
	if _, err := testDB.Pool.Exec(ctx, `INSERT INTO buyers (id, name) VALUES ($1, 'stranger')`, stranger); err != nil {
		t.Fatal(err)
	}
	if _, err := testDB.Pool.Exec(ctx, `INSERT INTO grants (seller_id, buyer_id, created_at) VALUES ($1, $2, now())`, other, stranger); err != nil {
		t.Fatal(err)
	}
	if _, err := testDB.Pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, buyer_id, url, event_types, secret, created_at, updated_at)
		VALUES (gen_random_uuid(), $1, 'https://example.com/hook', ARRAY['deal.updated'], '\x00', now(), now())`, stranger); err != nil {
		t.Fatal(err)
	}

	ev := EventRecord{ID: event, Type: "deal.updated", SellerID: seller}
	for _, size := range []int{1, 2, 3, len(want), len(want) + 1} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("page size %d: more pages than recipients", size)
			}
			page, err := s.Recipients(ctx, ev, after, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				got = append(got, RecipientsCursor(r))
				if r.Attempts != 0 && r.Attempts != 2 {
					t.Errorf("endpoint %s: %d attempts", r.EndpointID, r.Attempts)
				}
			}
			if len(page) < size {
				break
			}
			after = RecipientsCursor(page[len(page)-1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("page size %d:\n got %v\nwant %v", size, got, want)
		}
	}
	// The pending delivery keeps its attempts.
	all, err := s.Recipients(ctx, ev, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, r := range all {
		if r.Attempts == 2 {
			pending++
		}
	}
	if pending != 1 {
		t.Errorf("%d recipients carry the pending delivery's 2 attempts, want 1", pending)
	}
	// A former cursor (an endpoint ID) starts again from the first.
	again, err := s.Recipients(ctx, ev, strings.Split(want[len(want)-1], "/")[1], 1)
	if err != nil || len(again) != 1 || RecipientsCursor(again[0]) != want[0] {
		t.Errorf("a cursor of the former form gave %v, %v; want the first recipient %s", again, err, want[0])
	}
}
