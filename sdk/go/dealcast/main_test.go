package dealcast_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/dealcast/dealcast/internal/dbtest"
)

// testDB is this package's own migrated database.
var testDB *dbtest.Database

func TestMain(m *testing.M) {
	db, err := dbtest.Create(context.Background(), "sdk")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDB = db
	code := m.Run()
	db.Close()
	os.Exit(code)
}
