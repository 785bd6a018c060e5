package store

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/deal"
)

// newTestSeller makes a seller account for a test.
func newTestSeller(t *testing.T, s *Store, name string) string {
	t.Helper()
	a, err := s.CreateAccount(context.Background(), RoleSeller, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func newTestDeal(t *testing.T, seller string) deal.Deal {
	t.Helper()
	d, err := deal.New(uuid.NewString(), seller, deal.Draft{Name: "lot", TotalPrice: 500, Currency: "EUR",
		Items: []deal.Item{{ID: "i1", Name: "Item", Price: 500}}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCreateDealWritesTheDealAndItsEvent: without an Idempotency-Key the
// deal and its event are one statement; both rows are there, and agree.
func TestCreateDealWritesTheDealAndItsEvent(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	seller := newTestSeller(t, s, "one-statement seller")
	created, replayed, ref, err := s.CreateDeal(ctx, newTestDeal(t, seller), nil)
	if err != nil || replayed || ref == nil {
		t.Fatalf("CreateDeal: %v replayed=%v ref=%v", err, replayed, ref)
	}
	got, err := s.DealForSeller(ctx, created.ID, seller)
	if err != nil || got.Version != 1 || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("deal read back: %+v, %v", got, err)
	}
	ev, err := s.Event(ctx, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.DealID != created.ID || ev.Type != string(deal.EventCreated) || !ev.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("event %+v does not match deal %s created at %v", ev, created.ID, created.CreatedAt)
	}
}

// TestInsertDealIsAtomic: when the event row cannot be written, the deal
// is not written either.
func TestInsertDealIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	seller := newTestSeller(t, s, "atomic seller")
	first := newTestDeal(t, seller)
	_, _, ref, err := s.CreateDeal(ctx, first, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := newTestDeal(t, seller)
	ev := deal.Created(second)
	ev.ID = ref.ID // already taken: the event insert fails
	if err := insertDeal(ctx, testDB.Pool, second, ev); err == nil {
		t.Fatal("insert with a duplicate event id succeeded")
	}
	if _, err := s.DealForSeller(ctx, second.ID, seller); err != ErrNotFound {
		t.Errorf("the deal whose event failed exists: %v", err)
	}
}

// TestUpdateDealFromAStaleVersionWritesNothing: the conditional write of a
// patch that lost a race changes neither the deal nor the outbox.
func TestUpdateDealFromAStaleVersionWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	seller := newTestSeller(t, s, "stale seller")
	d, _, _, err := s.CreateDeal(ctx, newTestDeal(t, seller), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := "renamed"
	if _, _, err := s.PatchDeal(ctx, d.ID, seller, nil, deal.Patch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	// A writer that read version 1 and lost the race to the patch above.
	stale := d
	stale.Name, stale.Version = "stale", 2
	change := deal.Change{Deal: stale, Previous: map[string]any{"name": d.Name}}
	applied, err := updateDeal(ctx, testDB.Pool, 1, stale, deal.Updated(change), false)
	if err != nil || applied {
		t.Fatalf("stale update: applied=%v err=%v", applied, err)
	}
	got, err := s.DealForSeller(ctx, d.ID, seller)
	if err != nil || got.Name != "renamed" || got.Version != 2 {
		t.Errorf("deal after the stale update: %+v, %v", got, err)
	}
	evs, err := s.DealEvents(ctx, d.ID)
	if err != nil || len(evs) != 2 {
		t.Errorf("%d events after the stale update, want 2 (created, the patch): %v", len(evs), err)
	}
}
