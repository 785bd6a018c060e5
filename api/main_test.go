package api_test

import (
	"testing"

	"github.com/dealcast/dealcast/internal/dbtest"
)

// testDB is this package's own database, shared by its tests; each test
// makes its own accounts, so tests never see each other's rows.
var testDB *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, "api", &testDB) }
