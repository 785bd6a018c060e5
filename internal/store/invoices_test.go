package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
)

type tradingFixture struct {
	s      *Store
	seller string
	buyers []string
}

func newTradingFixture(t *testing.T, buyers int) tradingFixture {
	t.Helper()
	ctx := context.Background()
	f := tradingFixture{s: New(testDB.Pool)}
	f.seller = newTestSeller(t, f.s, "trading seller")
	for i := range buyers {
		b, err := f.s.CreateAccount(ctx, RoleBuyer, fmt.Sprintf("buyer %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.s.PutGrant(ctx, f.seller, b.ID); err != nil {
			t.Fatal(err)
		}
		f.buyers = append(f.buyers, b.ID)
	}
	return f
}

func (f tradingFixture) deal(t *testing.T) deal.Deal {
	t.Helper()
	d, _, _, err := f.s.CreateDeal(context.Background(), newTestDeal(t, f.seller), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f tradingFixture) purchase(dealID, buyer, key string) (Sale, error) {
	return f.s.Purchase(context.Background(), Purchase{DealID: dealID, Buyer: buyer, Terms: time.Hour,
		Idem: Idempotency{Key: key, Request: []byte(dealID)}})
}

// Of many buyers buying one deal at once, exactly one gets it; the others
// are told it is not for sale, and the deal has one invoice.
func TestConcurrentPurchasesOfOneDealSellItOnce(t *testing.T) {
	f := newTradingFixture(t, 10)
	d := f.deal(t)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		won    []Sale
		others []error
	)
	for i, b := range f.buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sale, err := f.purchase(d.ID, b, fmt.Sprintf("k%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won = append(won, sale)
			} else {
				others = append(others, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d purchases won, want 1 (errors: %v)", len(won), others)
	}
	for _, err := range others {
		if !errors.Is(err, ErrNotForSale) {
			t.Errorf("a losing purchase got %v, want ErrNotForSale", err)
		}
	}
	inv := won[0].Invoice
	if inv.Number != "INV-000001" || inv.Total != d.NetPrice || inv.Status != invoice.StatusOpen || len(won[0].Events) != 2 {
		t.Errorf("winning sale %+v", won[0])
	}
	got, err := f.s.DealForSeller(context.Background(), d.ID, f.seller)
	if err != nil || got.Status != deal.StatusSold || got.Version != d.Version+1 {
		t.Errorf("deal after the sale: %+v, %v", got, err)
	}
}

// Concurrent sales of one seller's deals take consecutive numbers with no
// gap, whatever the order they commit in.
func TestConcurrentSalesTakeConsecutiveNumbers(t *testing.T) {
	f := newTradingFixture(t, 1)
	const n = 20
	deals := make([]deal.Deal, n)
	for i := range deals {
		deals[i] = f.deal(t)
	}
	numbers := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, d := range deals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sale, err := f.purchase(d.ID, f.buyers[0], "k-"+d.ID)
			if err != nil {
				errs <- err
				return
			}
			numbers[i] = sale.Invoice.Number
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(numbers)
	for i, num := range numbers {
		if want := invoice.FormatNumber(int64(i + 1)); num != want {
			t.Fatalf("numbers %v: position %d is %s, want %s", numbers, i, num, want)
		}
	}
}

// A repeated purchase with the same key returns the first invoice and
// writes nothing; the same key for another deal is a conflict.
func TestPurchaseIdempotency(t *testing.T) {
	f := newTradingFixture(t, 1)
	d, other := f.deal(t), f.deal(t)
	first, err := f.purchase(d.ID, f.buyers[0], "same")
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.purchase(d.ID, f.buyers[0], "same")
	if err != nil || !again.Replayed || again.Invoice.ID != first.Invoice.ID || again.Events != nil {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	if _, err := f.purchase(other.ID, f.buyers[0], "same"); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("same key, other deal: %v, want ErrIdempotencyConflict", err)
	}
}

// Pay and void follow the invoice's states; void gives the deal back and
// the next sale takes the next number.
func TestPayAndVoid(t *testing.T) {
	ctx := context.Background()
	f := newTradingFixture(t, 2)
	seller := Viewer{Role: RoleSeller, ID: f.seller}
	d := f.deal(t)
	sale, err := f.purchase(d.ID, f.buyers[0], "a")
	if err != nil {
		t.Fatal(err)
	}
	id := sale.Invoice.ID
	if _, err := f.s.PayInvoice(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[0]}, id, Payment{Amount: sale.Invoice.Total}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a buyer paying: %v, want ErrNotFound", err)
	}
	if _, err := f.s.PayInvoice(ctx, seller, id, Payment{Amount: sale.Invoice.Total - 1}); !errors.Is(err, ErrWrongAmount) {
		t.Errorf("wrong amount: %v, want ErrWrongAmount", err)
	}
	voided, err := f.s.VoidInvoice(ctx, seller, id)
	if err != nil || voided.Invoice.Status != invoice.StatusVoid || len(voided.Events) != 2 {
		t.Fatalf("void: %+v, %v", voided, err)
	}
	if _, err := f.s.VoidInvoice(ctx, seller, id); !errors.Is(err, ErrInvoiceNotOpen) {
		t.Errorf("void twice: %v, want ErrInvoiceNotOpen", err)
	}
	again, err := f.purchase(d.ID, f.buyers[1], "b")
	if err != nil || again.Invoice.Number != "INV-000002" {
		t.Fatalf("second sale after void: %+v, %v", again, err)
	}
	paid, err := f.s.PayInvoice(ctx, seller, again.Invoice.ID, Payment{Amount: again.Invoice.Total, Reference: "bank"})
	if err != nil || paid.Invoice.Status != invoice.StatusPaid || paid.Invoice.PaidAt == nil {
		t.Fatalf("pay: %+v, %v", paid, err)
	}
	if _, err := f.s.PayInvoice(ctx, seller, again.Invoice.ID, Payment{Amount: again.Invoice.Total}); !errors.Is(err, ErrInvoiceNotOpen) {
		t.Errorf("pay twice: %v, want ErrInvoiceNotOpen", err)
	}
	if _, err := f.s.VoidInvoice(ctx, seller, again.Invoice.ID); !errors.Is(err, ErrInvoiceNotOpen) {
		t.Errorf("void after pay: %v, want ErrInvoiceNotOpen", err)
	}
	if _, err := f.s.Invoice(ctx, Viewer{Role: RoleBuyer, ID: f.buyers[1]}, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("another buyer reads the first invoice: %v, want ErrNotFound", err)
	}
}
