// Package dbtest gives each test package its own freshly migrated
// PostgreSQL database, created under a random name and dropped at the end,
// so packages run in parallel and leave nothing behind.
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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealcast/dealcast/internal/database"
)

// DefaultURL is the local PostgreSQL of every development and CI machine.
const DefaultURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// Database is one test package's database.
type Database struct {
	URL  string
	Pool *pgxpool.Pool
}

// Create makes and migrates a new database on the server of
// TEST_DATABASE_URL (DefaultURL when unset). Call Close when done.
func Create(ctx context.Context, prefix string) (*Database, error) {
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
