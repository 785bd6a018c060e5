package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Bids that queue behind a held auction lock are decided together, in
// few transactions, each as it would be alone: a request repeated with
// its Idempotency-Key while both are queued answers the one bid, a refused
// bid leaves no key (repeated, it is refused again, not replayed), a bid
// from a buyer the seller does not authorise is not found, and the
// accepted amounts rise in commit order.
func TestQueuedBidsShareTransactionsAndActAlone(t *testing.T) {
	t.Parallel()
	const buyers = 24
	f := newTradingFixture(t, buyers)
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	ctx := context.Background()

	// Hold the auction's row; the first bid leads, alone, and waits on it,
	// and the others queue up behind it.
	hold, err := testDB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Rollback(ctx) })
	if _, err := hold.Exec(ctx, `SELECT 1 FROM auctions WHERE id = $1 FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res BidResult
		err error
	}
	queued := func() int {
		f.s.bids.mu.Lock()
		defer f.s.bids.mu.Unlock()
		if w, ok := f.s.bids.waiting[a.ID]; ok {
			return len(w)
		}
		return -1
	}
	first := make(chan outcome, 1)
	go func() {
		res, err := f.bid(a.ID, f.buyers[0], 1000, "first")
		first <- outcome{res, err}
	}()
	waitFor(t, func() bool { return queued() == 0 }) // the leader took its bid
	// Buyer i bids 1000 + 100*(i%12) twice with one key, so each amount is
	// sent by two buyers: one of them is refused.
	results := make([]outcome, 2*buyers+1)
	done := make(chan struct{})
	go func() {
		together(len(results), func(i int) {
			if i == 2*buyers {
				results[i].res, results[i].err = f.bid(a.ID, "00000000-0000-4000-8000-000000000000", 5000, "stranger")
				return
			}
			b := i / 2
			results[i].res, results[i].err = f.bid(a.ID, f.buyers[b], int64(1000+100*(b%12)), fmt.Sprintf("k%d", b))
		})
		close(done)
	}()
	waitFor(t, func() bool { return queued() == len(results) })
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if o := <-first; o.err != nil {
		t.Fatalf("the first bid: %v", o.err)
	}
	<-done

	// Other tests' serializable transactions can make an attempt fail with
	// 40001 (predicate locks cover index pages, not rows) and retry the
	// same batch: count batches, not attempts.
	if n := f.s.bidTxs.Load() - f.s.retried.Load(); n > 2 {
		t.Errorf("the first bid and %d queued behind it took %d transactions; queued bids should share one", len(results), n)
	}
	if !errors.Is(results[2*buyers].err, ErrNotFound) {
		t.Errorf("a buyer the seller does not authorise: %v", results[2*buyers].err)
	}
	accepted := 1 // the first bid
	for b := range buyers {
		x, y := results[2*b], results[2*b+1]
		if (x.err == nil) != (y.err == nil) {
			t.Fatalf("buyer %d: one request accepted, its repeat not: %v / %v", b, x.err, y.err)
		}
		if x.err != nil {
			var low *BidTooLowError
			if !errors.As(x.err, &low) || !errors.As(y.err, &low) {
				t.Fatalf("buyer %d refused with %v / %v", b, x.err, y.err)
			}
			// The refused request left no key: repeated, it is decided again.
			if _, err := f.bid(a.ID, f.buyers[b], int64(1000+100*(b%12)), fmt.Sprintf("k%d", b)); !errors.As(err, &low) {
				t.Errorf("buyer %d's refused bid repeated: %v", b, err)
			}
			continue
		}
		accepted++
		if x.res.Bid.ID != y.res.Bid.ID || x.res.Replayed == y.res.Replayed {
			t.Errorf("buyer %d's two requests: bids %s (replayed %v) and %s (replayed %v)", b, x.res.Bid.ID, x.res.Replayed, y.res.Bid.ID, y.res.Replayed)
		}
	}
	got := acceptedAmounts(t, a.ID)
	if len(got) != accepted || accepted == 0 {
		t.Fatalf("%d accepted, rows %v", accepted, got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("accepted amounts not rising in commit order: %v", got)
		}
	}
	var keys int
	if err := testDB.Pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE (key LIKE 'k%' OR key = 'first') AND seller_id = ANY($1)`, f.buyers).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != accepted {
		t.Errorf("%d idempotency keys for %d accepted bids: a refused bid kept one", keys, accepted)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// A bid whose key another transaction is claiming at the same moment
// waits for it and then answers as that request did: here a replay of the
// stored response, with no second bid.
func TestBidRacingAClaimOfItsKeyReplays(t *testing.T) {
	t.Parallel()
	f := newTradingFixture(t, 1)
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	ctx := context.Background()
	first, err := f.bid(a.ID, f.buyers[0], 1000, "raced")
	if err != nil {
		t.Fatal(err)
	}
	// Take the key back out and hold a claim of it, uncommitted, with the
	// first bid's response.
	if _, err := testDB.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE seller_id = $1 AND key = 'raced'`, f.buyers[0]); err != nil {
		t.Fatal(err)
	}
	claim, err := testDB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = claim.Rollback(ctx) })
	response, _ := json.Marshal(first.Bid)
	request := fmt.Appendf(nil, "%s/%d", a.ID, 1200)
	hash := sha256.Sum256(request)
	if _, err := claim.Exec(ctx, claimKeySQL, f.buyers[0], "raced", hash[:], response, time.Now(), time.Now().Add(-IdempotencyTTL)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var res BidResult
	go func() {
		defer close(done)
		res, err = f.bid(a.ID, f.buyers[0], 1200, "raced")
	}()
	time.Sleep(200 * time.Millisecond) // the bid's claim now waits on the held one
	if err := claim.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil || !res.Replayed || res.Bid.ID != first.Bid.ID {
		t.Fatalf("the raced bid: %+v, %v", res, err)
	}
	if got := acceptedAmounts(t, a.ID); len(got) != 1 {
		t.Errorf("bids stored: %v", got)
	}
}
