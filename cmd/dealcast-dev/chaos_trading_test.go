package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
)

// tradingWorld is one seller's trading, made through the store as the API
// makes it, and what its buyers were told.
type tradingWorld struct {
	s      *store.Store
	seller string
	buyers []string
	// bought and won are sold deals (by purchase, by an auction);
	// idle is an available deal nothing touched.
	bought, won, idle deal.Deal
	wonAuction        string
	openAuction       string // closes in an hour
	told              chaosTold
}

// newTradingWorld sells two deals by purchase and one by an auction that
// its bids extended, closes
// an auction under its reserve, one without bids (its deal bought after)
// and cancels one; one auction stays open and one deal untouched.
func newTradingWorld(t *testing.T, s *store.Store) *tradingWorld {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	seller, err := s.CreateAccount(ctx, store.RoleSeller, "checked seller")
	must(err)
	w := &tradingWorld{s: s, seller: seller.ID}
	for range 2 {
		b, err := s.CreateAccount(ctx, store.RoleBuyer, "checked buyer")
		must(err)
		must(s.PutGrant(ctx, seller.ID, b.ID))
		w.buyers = append(w.buyers, b.ID)
	}
	newDeal := func() deal.Deal {
		d, err := deal.New(uuid.NewString(), seller.ID, deal.Draft{Name: "lot", TotalPrice: 2000, Currency: "EUR",
			Items: []deal.Item{{ID: "i", Name: "Item", Price: 2000}}})
		must(err)
		d, _, _, err = s.CreateDeal(ctx, d, nil)
		must(err)
		return d
	}
	buy := func(d deal.Deal, buyer string) {
		sale, err := s.Purchase(ctx, store.Purchase{DealID: d.ID, Buyer: buyer, Terms: time.Hour,
			Idem: store.Idempotency{Key: uuid.NewString(), Request: []byte(d.ID)}})
		must(err)
		w.told.Purchases = append(w.told.Purchases, chaosSale{Deal: d.ID, Invoice: sale.Invoice.ID, Buyer: buyer})
	}
	// Each closes in an hour; with extend seconds, every bid extends it.
	auctionOf := func(d deal.Deal, reserve int64, extend int, bids ...int64) string {
		draft := auction.Draft{StartPrice: 1000, MinIncrement: 100, ClosesAt: time.Now().Add(time.Hour), ExtendSeconds: &extend}
		if reserve > 0 {
			draft.ReservePrice = &reserve
		}
		ch, err := s.CreateAuction(ctx, store.NewAuction{DealID: d.ID, Seller: seller.ID, Draft: draft})
		must(err)
		for i, amount := range bids {
			res, err := s.PlaceBid(ctx, store.PlaceBidRequest{AuctionID: ch.Auction.ID, Buyer: w.buyers[i%2], Amount: amount,
				Idem: store.Idempotency{Key: uuid.NewString(), Request: []byte(ch.Auction.ID)}})
			must(err)
			w.told.Bids = append(w.told.Bids, res.Bid.ID)
		}
		return ch.Auction.ID
	}
	closeNow := func(id string) {
		_, err := s.CloseAuction(ctx, id, store.Viewer{Role: store.RoleSeller, ID: seller.ID}, time.Hour)
		must(err)
	}
	w.bought, w.won, w.idle = newDeal(), newDeal(), newDeal()
	buy(w.bought, w.buyers[0])
	buy(newDeal(), w.buyers[1])
	w.wonAuction = auctionOf(w.won, 1500, 3600, 1000, 1100, 1600)
	closeNow(w.wonAuction)
	closeNow(auctionOf(newDeal(), 5000, 0, 1000))
	noBids := newDeal()
	closeNow(auctionOf(noBids, 0, 0))
	buy(noBids, w.buyers[1])
	_, err = s.CancelAuction(ctx, store.Viewer{Role: store.RoleSeller, ID: seller.ID}, auctionOf(newDeal(), 0, 0))
	must(err)
	w.openAuction = auctionOf(newDeal(), 0, 0, 1200)
	return w
}

func (w *tradingWorld) exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// The trading checks of the fault run pass on a consistent seller and
// find each kind of broken state: a gap in the invoice numbers, a deal
// with two invoices, a sale without an invoice, and the rest.
func TestTradingChecksFindBrokenStates(t *testing.T) {
	ctx := context.Background()
	db, err := dbtest.Create(ctx, "chaoschecks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s := store.New(db.Pool)
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, w *tradingWorld)
		want    chaosViolations
	}{
		{"consistent", func(*testing.T, *tradingWorld) {}, chaosViolations{}},
		{"gap in invoice numbers", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE invoices SET number = number + 1
				WHERE seller_id = $1 AND number = (SELECT max(number) FROM invoices WHERE seller_id = $1)`, w.seller)
		}, chaosViolations{NumberGaps: 1}},
		{"number handed out without an invoice", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE invoice_counters SET last_number = last_number + 1 WHERE seller_id = $1`, w.seller)
		}, chaosViolations{NumberGaps: 1}},
		{"double invoice", func(t *testing.T, w *tradingWorld) {
			// The index that forbids it stands in the way of showing that
			// the check sees it: dropped for this case, then restored.
			w.exec(t, db.Pool, `DROP INDEX invoices_one_sale_per_deal`)
			copyID := uuid.NewString()
			t.Cleanup(func() {
				w.exec(t, db.Pool, `DELETE FROM invoices WHERE id = $1`, copyID)
				w.exec(t, db.Pool, `CREATE UNIQUE INDEX invoices_one_sale_per_deal ON invoices (deal_id) WHERE status <> 'void'`)
			})
			w.exec(t, db.Pool, `
				INSERT INTO invoices (id, seller_id, buyer_id, number, deal_id, auction_id, currency, lines, total, status,
				                      issued_at, due_at, version)
				SELECT $3, seller_id, buyer_id, (SELECT max(number) + 1 FROM invoices WHERE seller_id = $1), deal_id,
				       auction_id, currency, lines, total, status, issued_at, due_at, version
				FROM invoices WHERE seller_id = $1 AND deal_id = $2`, w.seller, w.bought.ID, copyID)
		}, chaosViolations{DoubleInvoices: 1}},
		{"sale without invoice", func(t *testing.T, w *tradingWorld) {
			sold := deal.StatusSold
			if _, _, err := w.s.PatchDeal(ctx, w.idle.ID, w.seller, nil, deal.Patch{Status: &sold}); err != nil {
				t.Fatal(err)
			}
		}, chaosViolations{SoldWithoutInvoice: 1}},
		{"invoice voided, deal still sold", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE invoices SET status = 'void' WHERE deal_id = $1`, w.bought.ID)
		}, chaosViolations{SoldWithoutInvoice: 1, AckedNoInvoice: 1}},
		{"purchase acknowledged, no invoice", func(t *testing.T, w *tradingWorld) {
			w.told.Purchases = append(w.told.Purchases, chaosSale{Deal: w.idle.ID, Invoice: uuid.NewString(), Buyer: w.buyers[0]})
		}, chaosViolations{AckedNoInvoice: 1}},
		{"auction stuck open past closes_at", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE auctions SET closes_at = opens_at + interval '1 millisecond' WHERE id = $1`, w.openAuction)
		}, chaosViolations{StuckAuctions: 1, BidOrder: 2}}, // its bid now falls after closes_at
		{"won auction without its sale", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE deals SET status = 'available' WHERE id = $1`, w.won.ID)
		}, chaosViolations{WrongOutcomes: 1, InvoiceNotSold: 1}},
		{"bid under the minimum", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE bids SET amount = 1150 WHERE auction_id = $1 AND seq = 3`, w.wonAuction)
		}, chaosViolations{BidOrder: 2}}, // the bid, and the auction's best_bid that is not its last
		{"late bid without its extension", func(t *testing.T, w *tradingWorld) {
			w.exec(t, db.Pool, `UPDATE auctions SET closes_at = closes_at - interval '1 minute' WHERE id = $1`, w.wonAuction)
		}, chaosViolations{BidOrder: 1}},
		{"acknowledged bid missing", func(t *testing.T, w *tradingWorld) {
			w.told.Bids = append(w.told.Bids, uuid.NewString())
		}, chaosViolations{AckedBidMissing: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTradingWorld(t, s)
			tc.corrupt(t, w)
			got, err := checkTrading(ctx, db.Pool, w.seller, w.told)
			if err != nil {
				t.Fatal(err)
			}
			if got.Violations != tc.want {
				t.Errorf("violations %+v, want %+v", got.Violations, tc.want)
			}
			if tc.want.total() == 0 {
				want := chaosTrading{PurchasesAcked: 3, BidsAcked: 5, Sold: 4, Invoices: 4, Auctions: 5, Won: 1,
					ReserveNotMet: 1, NoBids: 1, Cancelled: 1, Extended: 1}
				got.MaxLag = ""
				if got != want {
					t.Errorf("counts %+v, want %+v", got, want)
				}
			}
		})
	}
}
