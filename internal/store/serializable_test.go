package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
)

// serializableStore is a store on the package's database whose every
// connection runs SERIALIZABLE by default, as CockroachDB does, whatever
// TEST_ISOLATION says: here PostgreSQL raises the 40001 errors the
// store's retries exist for.
func serializableStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testDB.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "serializable"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var level string
	if err := pool.QueryRow(ctx, `SHOW default_transaction_isolation`).Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "serializable" {
		t.Fatalf("the pool runs %q, want serializable", level)
	}
	return New(pool)
}

// serializableFixture is newTradingFixture on serializableStore.
func serializableFixture(t *testing.T, buyers int) tradingFixture {
	t.Helper()
	f := newTradingFixture(t, buyers)
	f.s = serializableStore(t)
	return f
}

// together runs fn(0) … fn(n-1) in goroutines released at once, so they
// overlap as much as the machine allows, and waits for them.
func together(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			fn(i)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// Concurrent sales of one seller's deals, through four stores as four
// processes would, all queue on the seller's invoice counter row. Under
// SERIALIZABLE the losers fail with 40001 and are run again: every sale
// succeeds, the numbers are 1…n with no gap or duplicate, and at least one
// transaction took the retry path. Through one store, the sales queue in
// the process before their transactions begin: without that, 24 sales
// retried about a hundred times; with it, a retry is rare (SERIALIZABLE's
// page-level conflicts with the other tests' transactions).
func TestSerializableSalesRetryAndNumberWithoutGaps(t *testing.T) {
	t.Parallel()
	for _, processes := range []int{4, 1} {
		t.Run(fmt.Sprintf("%d processes", processes), func(t *testing.T) {
			t.Parallel()
			f := serializableFixture(t, 3)
			stores := []*Store{f.s}
			for len(stores) < processes {
				stores = append(stores, New(f.s.pool))
			}
			retried := sellConcurrently(t, f, stores, 24)
			switch {
			case processes > 1 && retried == 0:
				t.Errorf("24 concurrent sales on one invoice counter from %d processes, and no transaction was retried", processes)
			case processes == 1 && retried >= 24:
				t.Errorf("24 concurrent sales of one seller in one process: %d transactions retried", retried)
			}
		})
	}
}

// sellConcurrently sells n deals of f's seller at once, sale i through
// stores[i%len(stores)], checks that they took the numbers 1…n, and
// returns how many transactions were retried.
func sellConcurrently(t *testing.T, f tradingFixture, stores []*Store, n int) (retried int64) {
	t.Helper()
	deals := make([]string, n)
	for i := range deals {
		deals[i] = f.deal(t).ID
	}
	numbers := make([]string, n)
	errs := make([]error, n)
	together(n, func(i int) {
		sale, err := stores[i%len(stores)].Purchase(context.Background(), Purchase{DealID: deals[i], Buyer: f.buyers[i%len(f.buyers)],
			Terms: time.Hour, Idem: Idempotency{Key: fmt.Sprint("k", i), Request: []byte(deals[i])}})
		numbers[i], errs[i] = sale.Invoice.Number, err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("sale %d: %v (a serialization failure: %v)", i, err, isSerializationFailure(err))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(numbers)
	for i, num := range numbers {
		if want := invoice.FormatNumber(int64(i + 1)); num != want {
			t.Fatalf("numbers returned %v: position %d is %s, want %s", numbers, i, num, want)
		}
	}
	// What was stored agrees with what was returned.
	var count, lowest, highest, last int64
	err := testDB.Pool.QueryRow(context.Background(), `
		SELECT count(DISTINCT i.number), min(i.number), max(i.number), c.last_number
		FROM invoices i JOIN invoice_counters c ON c.seller_id = i.seller_id
		WHERE i.seller_id = $1 GROUP BY c.last_number`, f.seller).Scan(&count, &lowest, &highest, &last)
	if err != nil {
		t.Fatal(err)
	}
	if count != int64(n) || lowest != 1 || highest != int64(n) || last != int64(n) {
		t.Errorf("stored: %d distinct numbers from %d to %d, counter at %d; want %d from 1 to %d", count, lowest, highest, last, n, n)
	}
	for _, s := range stores {
		retried += s.retried.Load()
	}
	t.Logf("%d transactions retried", retried)
	return retried
}

// Many buyers bid on one auction at once under SERIALIZABLE, through four
// stores as four API processes would (each lines up its own bids, so the
// stores' transactions race for the row): no caller sees a serialization
// failure, only acceptance or BidTooLowError; the accepted amounts rise by
// at least the increment in commit order; the auction's best bid and count
// agree with the rows; and at least one transaction took the retry path.
func TestSerializableBidsRetryAndStayOrdered(t *testing.T) {
	t.Parallel()
	const (
		buyers = 16
		rounds = 4
	)
	f := serializableFixture(t, buyers)
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	var (
		mu       sync.Mutex
		accepted int
		tooLow   int
	)
	stores := []*Store{f.s, New(testDB.Pool), New(testDB.Pool), New(testDB.Pool)}
	retried := func() (n int64) {
		for _, s := range stores {
			n += s.retried.Load()
		}
		return n
	}
	bid := func(i, batch int) {
		for j := range rounds {
			// Amounts collide across buyers, so many bids race for the same minimum.
			amount := int64(1000 + 100*((batch*rounds+j)*4+i%5))
			_, err := stores[i%len(stores)].PlaceBid(context.Background(), PlaceBidRequest{AuctionID: a.ID, Buyer: f.buyers[i], Amount: amount,
				Idem: Idempotency{Key: fmt.Sprintf("k%d-%d-%d", batch, i, j), Request: fmt.Appendf(nil, "%d", amount)}})
			var tl *BidTooLowError
			mu.Lock()
			switch {
			case err == nil:
				accepted++
			case errors.As(err, &tl):
				tooLow++
				if amount >= tl.Minimum {
					t.Errorf("bid %d refused with minimum %d", amount, tl.Minimum)
				}
			default:
				t.Errorf("bid %d: %v (a serialization failure: %v)", amount, err, isSerializationFailure(err))
			}
			mu.Unlock()
		}
	}
	// A batch now and then passes without a retry; a few more make one
	// all but certain.
	batches := 0
	for ; batches < 5 && (batches == 0 || retried() == 0); batches++ {
		together(buyers, func(i int) { bid(i, batches) })
	}
	got := acceptedAmounts(t, a.ID)
	if len(got) != accepted || accepted == 0 || accepted+tooLow != batches*buyers*rounds {
		t.Fatalf("%d bids stored, %d accepted, %d too low, of %d", len(got), accepted, tooLow, batches*buyers*rounds)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1]+100 {
			t.Fatalf("accepted amounts not rising by the increment in commit order: %v", got)
		}
	}
	cur, err := f.s.Auction(context.Background(), Viewer{Role: RoleSeller, ID: f.seller}, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.BidCount != int64(len(got)) || cur.BestBid == nil || *cur.BestBid != got[len(got)-1] {
		t.Errorf("auction says %d bids, best %v; rows %v", cur.BidCount, cur.BestBid, got)
	}
	if r := retried(); r == 0 {
		t.Errorf("%d concurrent bids on one auction, and no transaction was retried", batches*buyers*rounds)
	} else {
		t.Logf("%d transactions retried in %d batches", r, batches)
	}
}

// Requests repeating one Idempotency-Key race to claim it in inTx's
// transaction, at the database's default isolation. Here the first claim
// is held open until the others are waiting on it; under SERIALIZABLE
// they then fail with 40001, since the claim committed after their
// snapshot, and are run again in a new transaction that sees it: all
// answer the one deal, stored once. (crdbpgx.ExecuteTx rolled back to a
// savepoint instead, which keeps PostgreSQL's old snapshot and fails
// again, and ignored an error at COMMIT.)
func TestSerializableIdempotentCreatesRetry(t *testing.T) {
	t.Parallel()
	const waiters = 4
	ctx := context.Background()
	s := serializableStore(t)
	seller := newTestSeller(t, s, "idempotent seller")
	d := newTestDeal(t, seller)
	idem := Idempotency{Key: "same-" + d.ID, Request: []byte("same body")}

	// The first request's transaction, held open after its claim.
	first, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(ctx) }()
	now := s.timestamp()
	d.CreatedAt, d.UpdatedAt = now, now
	response, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, claimed, err := claimIdempotencyKey(ctx, first, seller, &idem, response, now); err != nil || !claimed {
		t.Fatalf("first claim: %v, claimed %v", err, claimed)
	}
	if err := insertDeal(ctx, first, d, deal.Created(d)); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		id       string
		replayed bool
		err      error
	}
	answers := make(chan answer, waiters)
	for range waiters {
		go func() {
			got, replayed, _, err := s.CreateDeal(ctx, d, &idem)
			answers <- answer{got.ID, replayed, err}
		}()
	}
	// Commit the first claim once every other request waits on it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var blocked int
		if err := testDB.Pool.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO idempotency_keys%'`,
		).Scan(&blocked); err != nil {
			t.Fatal(err)
		}
		if blocked >= waiters {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests wait on the held key", blocked, waiters)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		a := <-answers
		if a.err != nil {
			t.Errorf("a repeated request: %v (a serialization failure: %v)", a.err, isSerializationFailure(a.err))
		} else if a.id != d.ID || !a.replayed {
			t.Errorf("a repeated request answered deal %q, replayed %v; want %q replayed", a.id, a.replayed, d.ID)
		}
	}
	var rows int
	if err := testDB.Pool.QueryRow(ctx, `SELECT count(*) FROM deals WHERE seller_id = $1`, seller).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d deals stored, want 1", rows)
	}
	if r := s.retried.Load(); r < waiters {
		t.Errorf("%d transactions retried, want at least %d: one per request that waited on the key", r, waiters)
	}
}

// Grants given at once, one statement each, all succeed under
// SERIALIZABLE: the statement is run again after a serialization failure.
func TestSerializableConcurrentGrants(t *testing.T) {
	t.Parallel()
	s := serializableStore(t)
	seller := newTestSeller(t, s, "granting seller")
	buyer, err := s.CreateAccount(context.Background(), RoleBuyer, "granted buyer")
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 10)
	together(len(errs), func(i int) { errs[i] = s.PutGrant(context.Background(), seller, buyer.ID) })
	for i, err := range errs {
		if err != nil {
			t.Errorf("grant %d: %v", i, err)
		}
	}
}
