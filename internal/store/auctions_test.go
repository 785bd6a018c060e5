package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/deal"
)

func (f tradingFixture) auction(t *testing.T, d deal.Deal, draft auction.Draft) auction.Auction {
	t.Helper()
	ch, err := f.s.CreateAuction(context.Background(), NewAuction{DealID: d.ID, Seller: f.seller, Draft: draft})
	if err != nil {
		t.Fatal(err)
	}
	return ch.Auction
}

func (f tradingFixture) bid(auctionID, buyer string, amount int64, key string) (BidResult, error) {
	return f.s.PlaceBid(context.Background(), PlaceBidRequest{AuctionID: auctionID, Buyer: buyer, Amount: amount,
		Idem: Idempotency{Key: key, Request: fmt.Appendf(nil, "%s/%d", auctionID, amount)}})
}

func (f tradingFixture) close(t *testing.T, id string) AuctionChange {
	t.Helper()
	ch, err := f.s.CloseAuction(context.Background(), id, Viewer{Role: RoleSeller, ID: f.seller}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func draftClosingIn(d time.Duration) auction.Draft {
	return auction.Draft{StartPrice: 1000, MinIncrement: 100, ClosesAt: time.Now().Add(d)}
}

// acceptedAmounts are an auction's accepted bids in commit order.
func acceptedAmounts(t *testing.T, auctionID string) []int64 {
	t.Helper()
	rows, err := testDB.Pool.Query(context.Background(), `SELECT amount FROM bids WHERE auction_id = $1 ORDER BY seq`, auctionID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var a int64
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// While an auction is live its deal cannot be bought, auctioned again or
// changed except for its name; once it ends without a sale it can.
func TestLiveAuctionHoldsItsDeal(t *testing.T) {
	ctx := context.Background()
	f := newTradingFixture(t, 1)
	d := f.deal(t)
	a := f.auction(t, d, draftClosingIn(time.Hour))
	if a.Status != auction.StatusOpen || a.MinimumNextBid != 1000 {
		t.Fatalf("new auction %+v", a)
	}
	if _, err := f.s.CreateAuction(ctx, NewAuction{DealID: d.ID, Seller: f.seller, Draft: draftClosingIn(time.Hour)}); !errors.Is(err, ErrAuctionLive) {
		t.Errorf("a second auction: %v, want ErrAuctionLive", err)
	}
	if _, err := f.purchase(d.ID, f.buyers[0], "p"); !errors.Is(err, ErrAuctionLive) {
		t.Errorf("purchase: %v, want ErrAuctionLive", err)
	}
	sold := deal.StatusSold
	if _, _, err := f.s.PatchDeal(ctx, d.ID, f.seller, nil, deal.Patch{Status: &sold}); !errors.Is(err, ErrAuctionLive) {
		t.Errorf("patching the status: %v, want ErrAuctionLive", err)
	}
	name := "renamed"
	if got, _, err := f.s.PatchDeal(ctx, d.ID, f.seller, nil, deal.Patch{Name: &name}); err != nil || got.Name != name {
		t.Errorf("renaming: %v %q", err, got.Name)
	}
	ch := f.close(t, a.ID)
	if ch.Auction.Status != auction.StatusClosed || *ch.Auction.Outcome != auction.OutcomeNoBids || ch.Auction.InvoiceID != nil {
		t.Fatalf("closed without bids: %+v", ch.Auction)
	}
	if _, err := f.purchase(d.ID, f.buyers[0], "p2"); err != nil {
		t.Errorf("purchase after the auction: %v", err)
	}
	other := f.deal(t)
	if _, err := f.purchase(other.ID, f.buyers[0], "p3"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateAuction(ctx, NewAuction{DealID: other.ID, Seller: f.seller, Draft: draftClosingIn(time.Hour)}); !errors.Is(err, ErrNotForSale) {
		t.Errorf("auctioning a sold deal: %v, want ErrNotForSale", err)
	}
	// Set available again while its invoice is open, it still cannot be
	// auctioned: the auction could never sell it.
	available := deal.StatusAvailable
	if _, _, err := f.s.PatchDeal(ctx, other.ID, f.seller, nil, deal.Patch{Status: &available}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateAuction(ctx, NewAuction{DealID: other.ID, Seller: f.seller, Draft: draftClosingIn(time.Hour)}); !errors.Is(err, ErrNotForSale) {
		t.Errorf("auctioning a deal whose invoice is open: %v, want ErrNotForSale", err)
	}
}

// Bids must reach the minimum; of 20 bids of the same amount at once
// exactly one is accepted.
func TestConcurrentEqualBidsOneAccepted(t *testing.T) {
	f := newTradingFixture(t, 20)
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	if _, err := f.bid(a.ID, f.buyers[0], 999, "low"); !isTooLow(err, 1000) {
		t.Fatalf("a first bid under start_price: %v", err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		refused  []error
	)
	for i, b := range f.buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.bid(a.ID, b, 1500, fmt.Sprint("k", i))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				accepted++
			} else {
				refused = append(refused, err)
			}
		}()
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d accepted, want 1", accepted)
	}
	for _, err := range refused {
		if !isTooLow(err, 1600) {
			t.Errorf("a refused bid: %v, want below the minimum of 1600", err)
		}
	}
	if got := acceptedAmounts(t, a.ID); len(got) != 1 || got[0] != 1500 {
		t.Errorf("bids stored %v", got)
	}
}

func isTooLow(err error, minimum int64) bool {
	var tl *BidTooLowError
	return errors.As(err, &tl) && tl.Minimum == minimum
}

// 200 bids from 20 buyers racing on one auction: the accepted amounts
// strictly increase in commit order, each refused bid names the minimum
// it missed, and the auction's best bid and count agree with the rows.
func TestRacingBidsAreLinearised(t *testing.T) {
	f := newTradingFixture(t, 20)
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	for i, b := range f.buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				// Amounts collide across buyers, so many bids race for the same minimum.
				amount := int64(1000 + 100*(j*3+i%7))
				_, err := f.bid(a.ID, b, amount, fmt.Sprintf("k%d-%d", i, j))
				var tl *BidTooLowError
				switch {
				case err == nil:
					mu.Lock()
					accepted++
					mu.Unlock()
				case errors.As(err, &tl):
					if amount >= tl.Minimum {
						t.Errorf("bid %d refused with minimum %d", amount, tl.Minimum)
					}
				default:
					t.Errorf("bid %d: %v", amount, err)
				}
			}
		}()
	}
	wg.Wait()
	got := acceptedAmounts(t, a.ID)
	if len(got) != accepted || accepted == 0 {
		t.Fatalf("%d bids stored, %d accepted", len(got), accepted)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1]+100 {
			t.Fatalf("accepted amounts not increasing by the increment in commit order: %v", got)
		}
	}
	cur, err := f.s.Auction(context.Background(), Viewer{Role: RoleSeller, ID: f.seller}, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur.BidCount != int64(len(got)) || *cur.BestBid != got[len(got)-1] {
		t.Errorf("auction says %d bids, best %d; rows %v", cur.BidCount, *cur.BestBid, got)
	}
}

// A bid racing the close at the deadline either counts (and wins, being
// the only one) or is refused; never accepted and then left out.
func TestBidAtTheDeadlineCountsOrIsRefused(t *testing.T) {
	f := newTradingFixture(t, 1)
	counted, refused := 0, 0
	for i := range 20 {
		a := f.auction(t, f.deal(t), draftClosingIn(30*time.Millisecond))
		time.Sleep(time.Until(a.ClosesAt) - time.Millisecond)
		var (
			wg     sync.WaitGroup
			bidErr error
			closed AuctionChange
			clsErr error
		)
		wg.Add(2)
		go func() { defer wg.Done(); _, bidErr = f.bid(a.ID, f.buyers[0], 1000, fmt.Sprint("d", i)) }()
		go func() {
			defer wg.Done()
			for {
				closed, _, clsErr = f.s.CloseDueAuctions(context.Background(), a.ID, time.Hour)
				if clsErr != nil || !closed.Auction.Status.Live() {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		wg.Wait()
		if clsErr != nil {
			t.Fatal(clsErr)
		}
		won := *closed.Auction.Outcome == auction.OutcomeWon
		switch {
		case bidErr == nil && won && closed.Auction.InvoiceID != nil:
			counted++
		case errors.Is(bidErr, ErrAuctionNotOpen) && !won:
			refused++
		default:
			t.Fatalf("bid: %v; outcome %s", bidErr, *closed.Auction.Outcome)
		}
	}
	t.Logf("at the deadline: %d counted, %d refused", counted, refused)
}

// A bid within extend_seconds of the close moves closes_at to its
// placed_at plus extend_seconds; an earlier one does not.
func TestLateBidExtendsTheAuction(t *testing.T) {
	f := newTradingFixture(t, 2)
	draft := draftClosingIn(time.Hour)
	ext := 3600
	draft.ExtendSeconds = &ext
	a := f.auction(t, f.deal(t), draft)
	r, err := f.bid(a.ID, f.buyers[0], 1000, "a")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := f.s.Auction(context.Background(), Viewer{Role: RoleSeller, ID: f.seller}, a.ID)
	if want := r.Bid.PlacedAt.Add(time.Hour); !cur.ClosesAt.Equal(want) {
		t.Errorf("closes_at %v, want %v", cur.ClosesAt, want)
	}
	draft = draftClosingIn(time.Hour)
	ext = 60
	draft.ExtendSeconds = &ext
	b := f.auction(t, f.deal(t), draft)
	if _, err := f.bid(b.ID, f.buyers[0], 1000, "b"); err != nil {
		t.Fatal(err)
	}
	cur, _ = f.s.Auction(context.Background(), Viewer{Role: RoleSeller, ID: f.seller}, b.ID)
	if !cur.ClosesAt.Equal(b.ClosesAt) {
		t.Errorf("an early bid moved closes_at from %v to %v", b.ClosesAt, cur.ClosesAt)
	}
}

// The outcomes of a close: the best bid meeting the reserve wins and is
// invoiced with the seller's next number; under the reserve the deal stays
// available. The views: a buyer sees neither reserve nor winner, and
// leading only for itself.
func TestCloseOutcomesAndViews(t *testing.T) {
	ctx := context.Background()
	f := newTradingFixture(t, 2)
	reserve := int64(2000)
	draft := draftClosingIn(time.Hour)
	draft.ReservePrice = &reserve

	under := f.auction(t, f.deal(t), draft)
	if _, err := f.bid(under.ID, f.buyers[0], 1500, "u"); err != nil {
		t.Fatal(err)
	}
	ch := f.close(t, under.ID)
	if *ch.Auction.Outcome != auction.OutcomeReserveNotMet || ch.Auction.InvoiceID != nil || ch.Auction.Winner != nil {
		t.Errorf("under the reserve: %+v", ch.Auction)
	}
	if d, _ := f.s.DealForSeller(ctx, under.DealID, f.seller); d.Status != deal.StatusAvailable {
		t.Errorf("the deal of an unsold auction is %s", d.Status)
	}

	a := f.auction(t, f.deal(t), draft)
	for i, amount := range []int64{1000, 2500} {
		if _, err := f.bid(a.ID, f.buyers[i], amount, fmt.Sprint("w", i)); err != nil {
			t.Fatal(err)
		}
	}
	asBuyer := func(i int) auction.Auction {
		x, err := f.s.Auction(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[i]}, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	if b0, b1 := asBuyer(0), asBuyer(1); b0.Leading || !b1.Leading || !b1.ForBuyer {
		t.Errorf("leading: buyer 0 %v, buyer 1 %v", b0.Leading, b1.Leading)
	}
	ch = f.close(t, a.ID)
	if *ch.Auction.Outcome != auction.OutcomeWon || *ch.Auction.Winner != f.buyers[1] || ch.Auction.InvoiceID == nil {
		t.Fatalf("won: %+v", ch.Auction)
	}
	inv, err := f.s.Invoice(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[1]}, *ch.Auction.InvoiceID)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Total != 2500 || inv.AuctionID == nil || *inv.AuctionID != a.ID {
		t.Errorf("invoice %+v", inv)
	}
	var sum int64
	for _, l := range inv.Lines {
		sum += l.Amount
	}
	if sum != inv.Total {
		t.Errorf("lines sum to %d, total %d", sum, inv.Total)
	}
	if d, _ := f.s.DealForSeller(ctx, a.DealID, f.seller); d.Status != deal.StatusSold {
		t.Errorf("the won deal is %s", d.Status)
	}
	if _, err := f.s.CloseAuction(ctx, a.ID, Viewer{Role: RoleSeller, ID: f.seller}, time.Hour); !errors.Is(err, ErrAuctionNotOpen) {
		t.Errorf("closing twice: %v", err)
	}
	again, events, err := f.s.CloseDueAuctions(ctx, a.ID, time.Hour)
	if err != nil || len(events) != 0 || *again.Auction.InvoiceID != *ch.Auction.InvoiceID {
		t.Errorf("the clock closing a closed auction: %v, %d events", err, len(again.Events))
	}
}

// Cancelling: only while there are no bids; the deal is free again. A
// revoked buyer can no longer bid, but its bid stays binding and wins.
func TestCancelAndRevokedBidder(t *testing.T) {
	ctx := context.Background()
	f := newTradingFixture(t, 1)
	seller := Viewer{Role: RoleSeller, ID: f.seller}
	a := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	ch, err := f.s.CancelAuction(ctx, seller, a.ID)
	if err != nil || ch.Auction.Status != auction.StatusCancelled {
		t.Fatalf("cancel: %v %+v", err, ch.Auction)
	}
	if _, err := f.bid(a.ID, f.buyers[0], 1000, "c"); !errors.Is(err, ErrAuctionNotOpen) {
		t.Errorf("bid on a cancelled auction: %v", err)
	}
	if _, err := f.purchase(a.DealID, f.buyers[0], "after-cancel"); err != nil {
		t.Errorf("purchase after a cancellation: %v", err)
	}

	b := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	if _, err := f.bid(b.ID, f.buyers[0], 1000, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CancelAuction(ctx, seller, b.ID); !errors.Is(err, ErrAuctionHasBids) {
		t.Errorf("cancel with a bid: %v", err)
	}
	if err := f.s.DeleteGrant(ctx, f.seller, f.buyers[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bid(b.ID, f.buyers[0], 5000, "r2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a revoked buyer's bid: %v, want ErrNotFound", err)
	}
	if _, err := f.s.Auction(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[0]}, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a revoked buyer reads the auction: %v", err)
	}
	won := f.close(t, b.ID)
	if won.Auction.Winner == nil || *won.Auction.Winner != f.buyers[0] {
		t.Fatalf("the revoked buyer's binding bid did not win: %+v", won.Auction)
	}
	if _, err := f.s.Invoice(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[0]}, *won.Auction.InvoiceID); err != nil {
		t.Errorf("the revoked winner cannot read its invoice: %v", err)
	}
}

// The clock's close of one auction takes every other auction of the
// seller already due with it, in one transaction: each is closed with its
// outcome and, when won, its invoice; an auction not yet due and another
// seller's stay open; and their own clocks then find them closed.
func TestCloseDueAuctionsClosesTheSellersDueOnes(t *testing.T) {
	t.Parallel()
	f := newTradingFixture(t, 2)
	other := newTradingFixture(t, 1)
	ctx := context.Background()
	var due []string
	for i := range 4 {
		a := f.auction(t, f.deal(t), draftClosingIn(time.Second))
		if i%2 == 0 {
			if _, err := f.bid(a.ID, f.buyers[0], 1000, fmt.Sprint("due", i)); err != nil {
				t.Fatal(err)
			}
		}
		due = append(due, a.ID)
	}
	later := f.auction(t, f.deal(t), draftClosingIn(time.Hour))
	elsewhere := other.auction(t, other.deal(t), draftClosingIn(time.Second))
	time.Sleep(1100 * time.Millisecond)

	own, events, err := f.s.CloseDueAuctions(ctx, due[0], time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if own.Auction.ID != due[0] || own.Auction.Status != auction.StatusClosed {
		t.Fatalf("own auction after the close: %+v", own.Auction)
	}
	closed := map[string]int{}
	for _, ev := range events {
		if ev.Type == string(auction.EventClosed) {
			closed[ev.DealID]++
		}
	}
	if len(closed) != len(due) {
		t.Errorf("auction.closed for %d deals, want the %d due auctions'", len(closed), len(due))
	}
	seller := Viewer{Role: RoleSeller, ID: f.seller}
	for i, id := range due {
		a, err := f.s.Auction(ctx, seller, id)
		if err != nil {
			t.Fatal(err)
		}
		want := auction.OutcomeNoBids
		if i%2 == 0 {
			want = auction.OutcomeWon
		}
		if a.Status != auction.StatusClosed || a.Outcome == nil || *a.Outcome != want || (want == auction.OutcomeWon) != (a.InvoiceID != nil) {
			t.Errorf("due auction %d: %s, outcome %v, invoice %v", i, a.Status, a.Outcome, a.InvoiceID)
		}
		// Its own clock finds it closed and changes nothing.
		if ch, evs, err := f.s.CloseDueAuctions(ctx, id, time.Hour); err != nil || ch.Auction.Version != a.Version || len(evs) != 0 {
			t.Errorf("due auction %d closed again: version %d (was %d), %d events, %v", i, ch.Auction.Version, a.Version, len(evs), err)
		}
	}
	if a, err := f.s.Auction(ctx, seller, later.ID); err != nil || a.Status != auction.StatusOpen {
		t.Errorf("the auction not yet due: %s, %v", a.Status, err)
	}
	if a, err := other.s.Auction(ctx, Viewer{Role: RoleSeller, ID: other.seller}, elsewhere.ID); err != nil || a.Status != auction.StatusOpen {
		t.Errorf("another seller's due auction: %s, %v", a.Status, err)
	}
	var invoices int
	if err := testDB.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE seller_id = $1`, f.seller).Scan(&invoices); err != nil || invoices != 2 {
		t.Errorf("%d invoices of the seller (%v), want 2", invoices, err)
	}
}
