package service_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.temporal.io/server/temporaltest"

	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/delivery"
)

// One database and one real Temporal server for the package; each test
// runs its own worker on its own task queue.
var (
	testDB   *dbtest.Database
	temporal *temporaltest.TestServer
)

func TestMain(m *testing.M) {
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setupAndRun(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := dbtest.Create(ctx, "delivery")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	testDB = db
	temporal = temporaltest.NewServer()
	defer temporal.Stop()
	if err := delivery.RegisterSearchAttributes(ctx, temporal.GetDefaultClient(), temporal.GetDefaultNamespace()); err != nil {
		return 0, err
	}
	return m.Run(), nil
}
