package api_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/dbtest"
)

// testDB is this package's own database, shared by its tests; each test
// makes its own accounts, so tests never see each other's rows.
var testDB *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, "api", &testDB) }

// scanOwnRow reads one row a test wrote itself into dest, at READ
// COMMITTED. Under TEST_ISOLATION=serializable a bare SELECT that scans a
// table other tests write to (events has no index on deal_id) can be
// chosen as a serialization failure's victim, and a test reading back its
// own rows needs no serializable snapshot.
func scanOwnRow(ctx context.Context, sql string, args []any, dest ...any) error {
	return pgx.BeginTxFunc(ctx, testDB.Pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, sql, args...).Scan(dest...)
	})
}
