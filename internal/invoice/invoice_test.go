package invoice

import (
	"slices"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/deal"
)

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{0, "gbp", "0.00"}, {5, "gbp", "0.05"}, {123456, "GBP", "1,234.56"}, {-1000, "eur", "-10.00"},
		{100000000, "usd", "1,000,000.00"}, {1234, "jpy", "1,234"}, {1234, "kwd", "1.234"}, {7, "bhd", "0.007"},
	} {
		if got := FormatAmount(c.minor, c.currency); got != c.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestLinesAddUpToThePricePaid(t *testing.T) {
	d := deal.Deal{ID: "d", Seller: "s", Currency: "gbp", Items: []deal.Item{{Name: "A", Price: 700}, {Name: "B", Price: 300}}}
	if got := Lines(d, 1000); len(got) != 2 {
		t.Errorf("no adjustment when the price is the items' sum: %+v", got)
	}
	d.Discount = &deal.Discount{Type: deal.DiscountFlat, Amount: deal.AmountOf(250)}
	inv := New("i", 3, d, "b", 750, time.Unix(0, 0).UTC(), time.Hour)
	want := []Line{{"A", 700}, {"B", 300}, {"Discount", -250}}
	if !slices.Equal(inv.Lines, want) || inv.Number != "INV-000003" || !inv.DueAt.Equal(time.Unix(3600, 0)) {
		t.Fatalf("invoice %+v", inv)
	}
	var sum int64
	for _, l := range inv.Lines {
		sum += l.Amount
	}
	if sum != inv.Total {
		t.Errorf("lines sum to %d, total %d", sum, inv.Total)
	}
	if got := Lines(d, 1200); got[2].Description != "Adjustment to the price paid" || got[2].Amount != 200 {
		t.Errorf("a price above the items: %+v", got)
	}
}
