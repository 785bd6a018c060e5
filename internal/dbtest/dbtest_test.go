package dbtest

import (
	"context"
	"testing"
)

// showIsolation is the default isolation a new session of db gets.
func showIsolation(t *testing.T, db *Database) string {
	t.Helper()
	var got string
	if err := db.Pool.QueryRow(context.Background(), `SHOW default_transaction_isolation`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// TEST_ISOLATION sets the isolation of every connection of the pool,
// not only of the one that created the database.
func TestIsolationFromTheEnvironment(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ env, want string }{
		{"serializable", "serializable"},
		{" Repeatable  Read ", "repeatable read"},
		{"", "read committed"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv(IsolationEnv, tc.env)
			db, err := Create(ctx, "dbtest")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Hold several connections at once so the pool must open new ones.
			var conns []func()
			for range 3 {
				c, err := db.Pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got string
				if err := c.QueryRow(ctx, `SHOW default_transaction_isolation`).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("%s=%q: a connection runs %q, want %q", IsolationEnv, tc.env, got, tc.want)
				}
				conns = append(conns, c.Release)
			}
			for _, release := range conns {
				release()
			}
			if got := showIsolation(t, db); got != tc.want {
				t.Errorf("after release: %q, want %q", got, tc.want)
			}
		})
	}
}

// A value PostgreSQL does not name fails Create instead of running the
// tests at the default level.
func TestIsolationTypoFails(t *testing.T) {
	t.Setenv(IsolationEnv, "serialisable")
	if db, err := Create(context.Background(), "dbtest"); err == nil {
		db.Close()
		t.Fatal("Create accepted TEST_ISOLATION=serialisable")
	}
}
