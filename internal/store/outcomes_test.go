package store

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/cpuclock"
)

// BenchmarkRecordAttempts writes the outcomes of one first-round page of
// 50 deliveries, all succeeded, for a new event each time: the write every
// change makes per page of recipients. machine-cpu-µs/op is the whole
// machine's busy CPU per page (PostgreSQL's backend and this process
// together); ns/op also holds the wait for each commit's WAL flush.
//
//	go test -run '^$' -bench RecordAttempts -count 5 ./internal/store/
func BenchmarkRecordAttempts(b *testing.B) {
	ctx := context.Background()
	s := New(testDB.Pool)
	code := int32(http.StatusNoContent)
	attempts := make([]Attempt, 50)
	for i := range attempts {
		attempts[i] = Attempt{
			EndpointID: uuid.NewString(), OwnerID: uuid.NewString(), OwnerRole: RoleBuyer,
			Status: DeliverySucceeded, StatusCode: &code, Counted: true,
		}
	}
	ev := EventRecord{Type: "deal.updated", SellerID: uuid.NewString(), CreatedAt: time.Now()}
	b.ReportAllocs()
	busy := cpuclock.MachineBusy()
	for b.Loop() {
		ev.ID = "evt_" + uuid.NewString()
		if err := s.RecordAttempts(ctx, ev, attempts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuclock.MachineBusy()-busy)*1e6/float64(b.N), "machine-cpu-µs/op")
}

// TestRecordAttemptsIsAllOrNothing: a page's outcomes and the disabling of
// its gone endpoints are one write. When an outcome cannot be stored, the
// endpoint stays enabled and no outcome of the page is kept; when all can,
// both land.
func TestRecordAttemptsIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	buyer, endpoint := uuid.NewString(), uuid.NewString()
	_, err := testDB.Pool.Exec(ctx, `
		WITH b AS (INSERT INTO buyers (id, name) VALUES ($1, 'gone buyer') RETURNING id)
		INSERT INTO webhook_endpoints (id, buyer_id, url, event_types, secret, created_at, updated_at)
		SELECT $2, id, 'https://example.com/gone', ARRAY['deal.updated'], '\x00', now(), now() FROM b`, buyer, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	code := int32(http.StatusGone)
	gone := Attempt{EndpointID: endpoint, OwnerID: buyer, OwnerRole: RoleBuyer, Status: DeliveryFailed, StatusCode: &code, Counted: true, Gone: true}
	ev := EventRecord{ID: "evt_" + uuid.NewString(), Type: "deal.updated", SellerID: uuid.NewString()}
	enabled := func() bool {
		t.Helper()
		var on bool
		if err := testDB.Pool.QueryRow(ctx, `SELECT enabled FROM webhook_endpoints WHERE id = $1`, endpoint).Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	stored := func() int {
		t.Helper()
		var n int
		if err := testDB.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE event_id = $1`, ev.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A status the table refuses fails the whole write.
	bad := Attempt{EndpointID: uuid.NewString(), OwnerID: uuid.NewString(), OwnerRole: RoleBuyer, Status: "lost", Counted: true}
	if err := s.RecordAttempts(ctx, ev, []Attempt{gone, bad}); err == nil {
		t.Fatal("an outcome the table refuses was accepted")
	}
	if !enabled() || stored() != 0 {
		t.Fatalf("after a failed write: endpoint enabled %v, %d outcomes stored; want enabled and none", enabled(), stored())
	}

	ok := Attempt{EndpointID: uuid.NewString(), OwnerID: uuid.NewString(), OwnerRole: RoleBuyer, Status: DeliverySucceeded, Counted: true}
	if err := s.RecordAttempts(ctx, ev, []Attempt{gone, ok}); err != nil {
		t.Fatal(err)
	}
	if enabled() || stored() != 2 {
		t.Fatalf("after the write: endpoint enabled %v, %d outcomes stored; want disabled and 2", enabled(), stored())
	}
}
