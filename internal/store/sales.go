package store

import (
	"context"
	"sync"
)

// saleLocks serialises, in this process, the transactions that may take a
// seller's next invoice number. Each of them updates the seller's counter
// row, and under SERIALIZABLE two that overlap cannot both commit: when
// many auctions of one seller close in the same second, every close but
// one failed with 40001 and started again, over and over. Taken before
// the transaction begins, the lock leaves the database to order only the
// sales of other processes.
type saleLocks struct {
	mu      sync.Mutex
	sellers map[string]*saleLock
}

type saleLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes when none remain
}

// lockSales takes the sale lock of the seller that owns the row id of
// table (deals or auctions) and returns its release. A row that cannot be
// read takes no lock: the transaction will report why.
func (s *Store) lockSales(ctx context.Context, table, id string) (unlock func()) {
	var seller string
	if err := s.pool.QueryRow(ctx, `SELECT seller_id::TEXT FROM `+table+` WHERE id = $1`, id).Scan(&seller); err != nil {
		return func() {}
	}
	l := &s.sales
	l.mu.Lock()
	if l.sellers == nil {
		l.sellers = map[string]*saleLock{}
	}
	e := l.sellers[seller]
	if e == nil {
		e = &saleLock{}
		l.sellers[seller] = e
	}
	e.users++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.users--; e.users == 0 {
			delete(l.sellers, seller)
		}
		l.mu.Unlock()
	}
}
