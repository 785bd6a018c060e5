package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/deal"
)

var testDB *dbtest.Database

func TestMain(m *testing.M) { dbtest.Main(m, "store", &testDB) }

// TestBuyerDealsMatchesOneFullOrdering pages through a buyer's list with
// many page sizes and filters and compares it with the whole list sorted
// by the database: skewed sellers (one holds most deals), many deals at the
// same instant (ties broken by id), and sellers that did not authorise the
// buyer, whose deals must never appear.
func TestBuyerDealsMatchesOneFullOrdering(t *testing.T) {
	ctx := context.Background()
	s := New(testDB.Pool)
	buyer, err := s.CreateAccount(ctx, RoleBuyer, "list buyer")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var sellers []string
	for i := range 14 {
		a, err := s.CreateAccount(ctx, RoleSeller, fmt.Sprintf("list seller %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sellers = append(sellers, a.ID)
		if i < 12 { // the last two did not authorise the buyer
			if err := s.PutGrant(ctx, a.ID, buyer.ID); err != nil {
				t.Fatal(err)
			}
		}
		n := rng.IntN(25)
		switch i {
		case 0:
			n = 300 // one seller holds most of the list
		case 12:
			n = 100
		}
		for range n {
			status := deal.StatusAvailable
			if rng.IntN(3) == 0 {
				status = deal.StatusSold
			}
			// 150 instants for about 500 deals: many ties.
			at := base.Add(time.Duration(rng.IntN(150)) * time.Millisecond)
			if _, err := testDB.Pool.Exec(ctx, `
				INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, status, items, version, created_at, updated_at)
				VALUES ($1, $2, 'd', 100, 100, 'EUR', $3, '[]', 1, $4, $4)`,
				uuid.NewString(), a.ID, string(status), at); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, f := range []DealFilter{{}, {Status: deal.StatusSold}, {Seller: sellers[0]}, {Seller: sellers[3]}, {Seller: sellers[12]}} {
		var want []string
		rows, err := testDB.Pool.Query(ctx, `
			SELECT d.id::TEXT FROM deals d JOIN grants g ON g.seller_id = d.seller_id AND g.buyer_id = $1
			WHERE ($2 = '' OR d.status = $2) AND ($3 = '' OR d.seller_id::TEXT = $3)
			ORDER BY d.created_at DESC, d.id DESC`, buyer.ID, string(f.Status), f.Seller)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		for _, limit := range []int{1, 3, 7, 8, 9, 25, 100, 500} {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+2 {
					t.Fatalf("filter %+v limit %d: paging does not end", f, limit)
				}
				p, err := s.BuyerDeals(ctx, buyer.ID, f, cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				if p.Next != "" && len(p.Items) != limit {
					t.Fatalf("filter %+v limit %d: a page of %d before the end", f, limit, len(p.Items))
				}
				for _, d := range p.Items {
					got = append(got, d.ID)
				}
				if p.Next == "" {
					break
				}
				cursor = p.Next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("filter %+v limit %d: listed %d deals, the full ordering has %d (first difference at %d)",
					f, limit, len(got), len(want), firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
