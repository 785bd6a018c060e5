package deal

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testSeller = "8d0b1c4e-0000-4000-8000-000000000001"

// draftOf is a valid draft whose items cost prices.
func draftOf(prices ...int64) Draft {
	d := Draft{Name: "Bundle", Currency: "gbp"}
	for i, p := range prices {
		d.Items = append(d.Items, Item{ID: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("Item %d", i), Price: p})
		d.TotalPrice += p
	}
	return d
}

// fieldsOf lists the fields a validation error names; it fails the test
// when err is not a *ValidationError.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var out []string
	for _, f := range verr.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestNewNormalizes(t *testing.T) {
	t.Parallel()
	draft := draftOf(600, 400)
	draft.Currency = "GBP"
	draft.Discount = &Discount{Type: DiscountPercentage, Amount: mustAmount(t, "12.50")}
	d, err := New("deal-1", testSeller, draft)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "deal-1" || d.Seller != testSeller || d.Version != 1 || d.Currency != "gbp" || d.Status != StatusAvailable ||
		d.NetPrice != 875 || d.TotalPrice != 1000 || d.Name != "Bundle" || !d.CreatedAt.IsZero() {
		t.Fatalf("new deal %+v", d)
	}
	if b, _ := d.Discount.Amount.MarshalJSON(); string(b) != "12.5" {
		t.Fatalf("amount %s, want canonical 12.5", b)
	}
	// The draft is not changed, and the deal shares nothing with it.
	if b, _ := draft.Discount.Amount.MarshalJSON(); string(b) != "12.50" || draft.Currency != "GBP" {
		t.Fatalf("New changed the draft: %+v", draft)
	}
	draft.Items[0].Price = 1
	draft.Discount.Type = DiscountFlat
	if d.Items[0].Price != 600 || d.Discount.Type != DiscountPercentage {
		t.Fatalf("deal aliases the draft: %+v", d)
	}
	sold := draftOf(1)
	sold.Status = StatusSold
	if d, err := New("x", testSeller, sold); err != nil || d.Status != StatusSold {
		t.Fatalf("sold draft: %+v %v", d, err)
	}
	flatDraft := draftOf(1000)
	flatDraft.Discount = &Discount{Type: DiscountFlat, Amount: mustAmount(t, "1e2")}
	if d, err := New("x", testSeller, flatDraft); err != nil || d.NetPrice != 900 {
		t.Fatalf("flat 1e2: %+v %v", d, err)
	} else if b, _ := d.Discount.Amount.MarshalJSON(); string(b) != "100" {
		t.Fatalf("flat amount %s, want canonical 100", b)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	for _, tc := range []struct {
		name   string
		modify func(*Draft)
		fields []string
	}{
		{"empty name", func(d *Draft) { d.Name = "" }, []string{"name"}},
		{"blank name", func(d *Draft) { d.Name = " \t\n" }, []string{"name"}},
		{"name 201 runes", func(d *Draft) { d.Name = long(201, "é") }, []string{"name"}},
		{"name NUL", func(d *Draft) { d.Name = "a\x00" }, []string{"name"}},
		{"name invalid UTF-8", func(d *Draft) { d.Name = "a\xff" }, []string{"name"}},
		{"no items", func(d *Draft) { d.Items = nil; d.TotalPrice = 0 }, []string{"items"}},
		{"1001 items", func(d *Draft) {
			d.Items = make([]Item, MaxItems+1)
			for i := range d.Items {
				d.Items[i] = Item{ID: fmt.Sprint(i), Name: "x"}
			}
			d.TotalPrice = 0
		}, []string{"items"}},
		{"duplicate ids", func(d *Draft) { d.Items[1].ID = d.Items[0].ID }, []string{"items[1].id"}},
		{"item id 101 runes", func(d *Draft) { d.Items[0].ID = long(101, "x") }, []string{"items[0].id"}},
		{"item id NUL", func(d *Draft) { d.Items[1].ID = "\x00" }, []string{"items[1].id"}},
		{"item name empty", func(d *Draft) { d.Items[0].Name = "" }, []string{"items[0].name"}},
		{"item name 201 runes", func(d *Draft) { d.Items[0].Name = long(201, "x") }, []string{"items[0].name"}},
		{"negative price", func(d *Draft) { d.Items[0].Price = -1; d.TotalPrice = 399 }, []string{"items[0].price"}},
		{"price above the maximum", func(d *Draft) { d.Items[1].Price = MaxItemPrice + 1 }, []string{"items[1].price"}},
		{"total mismatch", func(d *Draft) { d.TotalPrice++ }, []string{"total_price"}},
		{"unknown currency", func(d *Draft) { d.Currency = "abc" }, []string{"currency"}},
		{"empty currency", func(d *Draft) { d.Currency = "" }, []string{"currency"}},
		{"unknown status", func(d *Draft) { d.Status = "lost" }, []string{"status"}},
		{"discount type", func(d *Draft) { d.Discount = &Discount{Type: "bogo", Amount: AmountOf(1)} }, []string{"discount.type"}},
		{"flat zero", func(d *Draft) { d.Discount = flat(0) }, []string{"discount.amount"}},
		{"flat above total", func(d *Draft) { d.Discount = flat(1001) }, []string{"discount.amount"}},
		{"flat fraction", func(d *Draft) { d.Discount = &Discount{Type: DiscountFlat, Amount: mustAmount(t, "1.5")} }, []string{"discount.amount"}},
		{"flat zero Amount", func(d *Draft) { d.Discount = &Discount{Type: DiscountFlat} }, []string{"discount.amount"}},
		{"percentage zero", func(d *Draft) { d.Discount = pct(t, "0") }, []string{"discount.amount"}},
		{"percentage over 100", func(d *Draft) { d.Discount = pct(t, "100.01") }, []string{"discount.amount"}},
		{"percentage three decimals", func(d *Draft) { d.Discount = pct(t, "1.234") }, []string{"discount.amount"}},
		{"percentage negative", func(d *Draft) { d.Discount = pct(t, "-1") }, []string{"discount.amount"}},
		{"several at once", func(d *Draft) {
			d.Items[0].Price = -5
			d.Items[1].ID = d.Items[0].ID
			d.Currency = "zz"
			d.Status = "x"
		}, []string{"items[0].price", "items[1].id", "currency", "status"}},
	} {
		draft := draftOf(600, 400)
		tc.modify(&draft)
		_, err := New("x", testSeller, draft)
		got := fieldsOf(t, err)
		for _, f := range tc.fields {
			if !slices.Contains(got, f) {
				t.Errorf("%s: error names %v, want %s", tc.name, got, f)
			}
		}
		if len(got) != len(tc.fields) {
			t.Errorf("%s: error names %v, want exactly %v", tc.name, got, tc.fields)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "invalid deal: ") || !strings.Contains(msg, tc.fields[0]+": ") {
			t.Errorf("%s: message %q", tc.name, msg)
		}
	}
	// Limits themselves are fine.
	edge := draftOf(MaxItemPrice, 0)
	edge.Name = long(200, "€")
	edge.Items[0].ID = long(100, "ü")
	edge.Items[1].Name = long(200, "x")
	edge.Discount = pct(t, "100")
	if d, err := New("x", testSeller, edge); err != nil || d.NetPrice != 0 {
		t.Fatalf("deal at the limits: %+v %v", d, err)
	}
	prices := make([]int64, MaxItems)
	for i := range prices {
		prices[i] = MaxItemPrice
	}
	if d, err := New("x", testSeller, draftOf(prices...)); err != nil || d.TotalPrice != int64(MaxItems)*MaxItemPrice {
		t.Fatalf("1000 items at the maximum price: %v", err)
	}
}

// TestNewReportsTotalMismatchWithOtherErrors: ValidationError "lists every
// rule a deal breaks". A total that does not match valid item prices is
// such a rule even when, say, the name is also bad; the client should learn
// both at once.
func TestNewReportsTotalMismatchWithOtherErrors(t *testing.T) {
	t.Parallel()
	draft := draftOf(600, 400)
	draft.Name = "   "
	draft.TotalPrice = 999
	got := fieldsOf(t, nil2(New("x", testSeller, draft)))
	if !slices.Contains(got, "name") || !slices.Contains(got, "total_price") {
		t.Fatalf("error names %v, want name and total_price", got)
	}
}

func nil2(_ Deal, err error) error { return err }

func TestNormalizeCurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"GBP", "gbp", true}, {"gbp", "gbp", true}, {"uSd", "usd", true}, {"JPY", "jpy", true}, {"chf", "chf", true},
		{"XTS", "xts", false}, {"xxx", "xxx", false}, {"", "", false}, {"gb", "gb", false}, {"gbpp", "gbpp", false},
		{"zzz", "zzz", false}, {" gbp", " gbp", false}, {"g\x00p", "g\x00p", false},
	} {
		out, ok := NormalizeCurrency(tc.in)
		if out != tc.out || ok != tc.ok {
			t.Errorf("NormalizeCurrency(%q) = %q, %v; want %q, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
	for code := range isoCurrencies {
		if len(code) != 3 || strings.ToLower(code) != code {
			t.Errorf("currency table holds %q", code)
		}
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	d, err := New("deal-1", testSeller, draftOf(100))
	if err != nil {
		t.Fatal(err)
	}
	d.CreatedAt, d.UpdatedAt = now, now
	c := Created(d)
	if c.Type != EventCreated || !c.CreatedAt.Equal(now) || c.Data.Deal.ID != "deal-1" || c.Data.Previous != nil {
		t.Fatalf("created %+v", c)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "previous") {
		t.Fatalf("created event has previous: %s", b)
	}

	next := d
	next.Name = "New"
	next.Version = 2
	next.UpdatedAt = now.Add(time.Second)
	u := Updated(Change{Deal: next, Previous: map[string]any{"name": "Bundle"}})
	if u.Type != EventUpdated || !u.CreatedAt.Equal(next.UpdatedAt) || u.Data.Deal.Version != 2 ||
		!reflect.DeepEqual(u.Data.Previous, map[string]any{"name": "Bundle"}) {
		t.Fatalf("updated %+v", u)
	}
	var back Event
	b, _ = json.Marshal(u)
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != u.ID || back.Data.Previous["name"] != "Bundle" || back.Data.Deal.Name != "New" {
		t.Fatalf("event round trip %+v", back)
	}

	seen := map[string]bool{}
	for range 1000 {
		id := NewEventID()
		if !strings.HasPrefix(id, "evt_") || len(id) != len("evt_")+26 || strings.ToLower(id) != id || seen[id] {
			t.Fatalf("event ID %q (seen %v)", id, seen[id])
		}
		seen[id] = true
	}
}
