package activities_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/dbtest"
)

// testDB is the package's own migrated database. Tests share it and stay
// apart by giving every test its own seller: an event reaches only the
// buyers its seller grants, so no test sees another's recipients.
var testDB *dbtest.Database

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
	db, err := dbtest.Create(ctx, "activities")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	testDB = db
	return m.Run(), nil
}
