// Package dbtest gives each test package its own freshly migrated
// PostgreSQL database, created under a random name and dropped at the end,
// so packages run in parallel and leave nothing behind.
//
// Two environment variables configure it:
//
//   - TEST_DATABASE_URL is the server the databases are created on
//     (DefaultURL when unset).
//   - TEST_ISOLATION, when set, is the default transaction isolation of
//     every database created: "serializable", "repeatable read" or "read
//     committed" (PostgreSQL's own default). Production runs on
//     CockroachDB, where every transaction is SERIALIZABLE and may fail
//     with a 40001 retry error under contention; PostgreSQL's read
//     committed never raises one, so TEST_ISOLATION=serializable is how
//     the tests reach the store's retry paths (`make test-serializable`).
//     It is set on the database before the pool opens, so every
//     connection, the migrations' included, runs with it.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealcast/dealcast/internal/database"
)

// DefaultURL is the local PostgreSQL of every development and CI machine.
const DefaultURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// IsolationEnv names the variable that sets the test databases' default
// transaction isolation.
const IsolationEnv = "TEST_ISOLATION"

// Isolation is the default transaction isolation TEST_ISOLATION asks for,
// in PostgreSQL's spelling, or "" when it is unset and the server's
// default stands. A value PostgreSQL does not name is an error, so a typo
// cannot quietly run the tests at the default level.
func Isolation() (string, error) {
	v := strings.Join(strings.Fields(strings.ToLower(os.Getenv(IsolationEnv))), " ")
	switch v {
	case "", "serializable", "repeatable read", "read committed":
		return v, nil
	}
	return "", fmt.Errorf("%s=%q: want serializable, repeatable read or read committed", IsolationEnv, os.Getenv(IsolationEnv))
}

// Database is one test package's database.
type Database struct {
	URL  string
	Pool *pgxpool.Pool
}

// Create makes and migrates a new database on the server of
// TEST_DATABASE_URL (DefaultURL when unset), with the default isolation
// of TEST_ISOLATION when set. Call Close when done.
func Create(ctx context.Context, prefix string) (*Database, error) {
	isolation, err := Isolation()
	if err != nil {
		return nil, err
	}
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	u.Path = "/" + strings.ToLower(fmt.Sprintf("test_%s_%s", prefix, hex.EncodeToString(suffix[:])))
	q := u.Query()
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", "32")
	}
	u.RawQuery = q.Encode()
	db := &Database{URL: u.String()}
	if err := database.Ensure(ctx, db.URL); err != nil {
		return nil, fmt.Errorf("create test database (is PostgreSQL running on %s?): %w", u.Host, err)
	}
	if isolation != "" {
		if err := setIsolation(ctx, db.URL, isolation); err != nil {
			_ = database.Drop(ctx, db.URL)
			return nil, fmt.Errorf("set the test database's isolation: %w", err)
		}
	}
	db.Pool, err = database.Open(ctx, db.URL)
	if err != nil {
		_ = database.Drop(ctx, db.URL)
		return nil, err
	}
	if _, err := database.Migrate(ctx, db.Pool); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate test database: %w", err)
	}
	return db, nil
}

// setIsolation makes isolation the default of every later session of the
// database at url. Sessions read the setting when they start, which is
// why it comes before the pool opens.
func setIsolation(ctx context.Context, url, isolation string) error {
	cfg, err := pgxpool.ParseConfig(url) // a pool URL: pool_max_conns is not for the server
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// ALTER DATABASE takes no parameters; isolation is one of Isolation's
	// fixed values and the name is quoted as an identifier.
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET default_transaction_isolation = '%s'",
		pgx.Identifier{cfg.ConnConfig.Database}.Sanitize(), isolation))
	return err
}

// Close closes the pool and drops the database.
func (db *Database) Close() {
	if db.Pool != nil {
		db.Pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = database.Drop(ctx, db.URL)
}

// Main is a test package's TestMain for the common case: it creates the
// package's database into *db, runs the tests, drops the database and
// exits with the tests' status.
func Main(m *testing.M, prefix string, db **Database) {
	d, err := Create(context.Background(), prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*db = d
	code := m.Run()
	d.Close()
	os.Exit(code)
}
