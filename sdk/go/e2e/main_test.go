package e2e_test

import (
	"testing"

	"github.com/dealcast/dealcast/internal/dbtest"
)

// testDB is this package's own migrated database.
var testDB *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, "sdk", &testDB) }
