// Package store keeps Dealcast's state in PostgreSQL or CockroachDB. It is
// the only package that speaks SQL: every query is one both engines accept,
// every multi-statement write runs in a transaction retried whole after a
// serialization failure (inTx, and inSerializableTx for the writes that
// decide money, SERIALIZABLE whatever the database's default), a write that
// is one statement in crdb.ExecuteCtx, so CockroachDB's serialization
// retries are handled, and driver errors are translated here so no pgx
// type leaks upward.
package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors the store returns; callers match them with errors.Is.
var (
	// ErrNotFound means the row is absent or not visible to the caller.
	ErrNotFound = errors.New("not found")
	// ErrVersionMismatch means If-Match named a version that is no longer current.
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrIdempotencyConflict means an Idempotency-Key was reused with another body.
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	// ErrUnavailable means the database could not be reached or timed out.
	ErrUnavailable = errors.New("database unavailable")
)

// Store is the database behind the API and the workers.
type Store struct {
	pool *pgxpool.Pool
	// now is the clock; timestamps are taken here, not in SQL, so that a
	// deal and its event carry the same instant and can be written in one
	// round trip.
	now func() time.Time
	// FeedSettle is how old an event must be before the pull feed shows it.
	// A transaction that started earlier may commit later; waiting this long
	// keeps the feed from skipping such an event once a buyer has read past it.
	FeedSettle time.Duration
	// retried counts the transactions run again after a serialization
	// failure, so tests can tell that contention took the retry path.
	retried atomic.Int64
	// bids lines up this process's bids on each auction (bids.go);
	// bidTxs counts the transactions that decided them, retries included.
	bids   bidQueue
	bidTxs atomic.Int64
	// sales serialises this process's sales of each seller (sales.go).
	sales saleLocks
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, now: time.Now, FeedSettle: 5 * time.Second, bids: bidQueue{waiting: map[string][]*queuedBid{}}}
}

// Pool returns the connection pool, for health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return translate(s.pool.Ping(ctx)) }

// timestamp is the store's clock in the precision the database keeps.
func (s *Store) timestamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction at the database's default isolation
// (SERIALIZABLE on CockroachDB), run again whole after a serialization
// failure as inSerializableTx does. crdbpgx.ExecuteTx is not used: its
// retries roll back to a savepoint, which on a PostgreSQL database running
// SERIALIZABLE keeps the failed snapshot and fails again, and it ignores
// the COMMIT's error, so a transaction that failed serialization at COMMIT
// would be reported as written. fn may run more than once: it must have no
// effects outside the transaction.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.retryTx(ctx, pgx.TxOptions{}, fn)
}

// translate maps driver errors to the store's own.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrVersionMismatch) ||
		errors.Is(err, ErrIdempotencyConflict) || errors.Is(err, ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23503": // foreign_key_violation: a referenced account is missing
			return ErrNotFound
		case "22P02", "22021": // not a valid id, or bytes no text can hold: names no row
			return ErrNotFound
		case "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006": // shutdown, too many connections, connection failures
			return errors.Join(ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) {
		return errors.Join(ErrUnavailable, err)
	}
	return err
}

// inSerializableTx runs fn in a SERIALIZABLE transaction, for what decides
// money (sales, invoice numbers, payments) whatever the database's default
// isolation, and runs the whole transaction again after a serialization
// failure, at any statement or at COMMIT, following a short random pause
// that lets the winner finish. crdbpgx.ExecuteTx is not used here: its
// savepoint protocol takes RELEASE for the commit and ignores the COMMIT's
// error, which holds on CockroachDB but not on PostgreSQL, where a
// serializable transaction can still fail at COMMIT.
func (s *Store) inSerializableTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.retryTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
}

// retryTx runs fn in a transaction with opts, and runs the whole
// transaction again, in a new one with a new snapshot, after a
// serialization failure at any statement or at COMMIT.
func (s *Store) retryTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	const attempts = 40
	pause := 2 * time.Millisecond
	for i := 1; ; i++ {
		err := s.txOnce(ctx, opts, fn)
		if err == nil || !isSerializationFailure(err) || i == attempts {
			return translate(err)
		}
		s.retried.Add(1)
		select {
		case <-ctx.Done():
			return translate(ctx.Err())
		case <-time.After(pause/2 + rand.N(pause)):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// txOnce is one attempt of retryTx: fn, then COMMIT, whose error counts.
func (s *Store) txOnce(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

// isSerializationFailure reports whether err is a transaction that lost a
// serialization conflict and may be run again.
func isSerializationFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// isUniqueViolation reports whether err is a unique constraint's refusal.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// exec runs a write that is one statement on its own, run again after a
// serialization failure (crdb.ExecuteCtx): CockroachDB retries most such
// statements itself, but not all, and PostgreSQL under SERIALIZABLE never
// does.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
		var err error
		tag, err = s.pool.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}
