package deal

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds for the deal fuzz targets live here (f.Add) and in
// testdata/fuzz/<target>/; `make fuzz` explores from them, and every
// `go test` run replays them.

// checkDeal fails unless d obeys every rule a valid deal obeys: what New
// and Apply promise about anything they return without error.
func checkDeal(t *testing.T, d Deal) {
	t.Helper()
	if n := len(d.Items); n < 1 || n > MaxItems {
		t.Fatalf("%d items", n)
	}
	var sum int64
	ids := map[string]bool{}
	for i, it := range d.Items {
		if it.Price < 0 || it.Price > MaxItemPrice {
			t.Fatalf("items[%d].price %d", i, it.Price)
		}
		if ids[it.ID] {
			t.Fatalf("items[%d].id %q repeated", i, it.ID)
		}
		ids[it.ID] = true
		for _, s := range []string{it.ID, it.Name} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || strings.TrimSpace(s) == "" {
				t.Fatalf("items[%d] text %q", i, s)
			}
		}
		sum += it.Price
	}
	if sum != d.TotalPrice {
		t.Fatalf("total_price %d, items sum to %d", d.TotalPrice, sum)
	}
	if !utf8.ValidString(d.Name) || strings.ContainsRune(d.Name, 0) || strings.TrimSpace(d.Name) == "" ||
		utf8.RuneCountInString(d.Name) > MaxNameLen {
		t.Fatalf("name %q", d.Name)
	}
	if c, ok := NormalizeCurrency(d.Currency); !ok || c != d.Currency {
		t.Fatalf("currency %q", d.Currency)
	}
	if d.Status != StatusAvailable && d.Status != StatusSold {
		t.Fatalf("status %q", d.Status)
	}
	// Money: the net price is in [0, total] and is total minus the
	// discount's value, whatever the discount.
	if d.NetPrice < 0 || d.NetPrice > d.TotalPrice {
		t.Fatalf("net_price %d outside [0, %d] (discount %+v)", d.NetPrice, d.TotalPrice, d.Discount)
	}
	if want := d.TotalPrice - DiscountValue(d.TotalPrice, d.Discount); d.NetPrice != want {
		t.Fatalf("net_price %d, want total %d − discount %d", d.NetPrice, d.TotalPrice, d.TotalPrice-want)
	}
	if disc := d.Discount; disc != nil {
		switch disc.Type {
		case DiscountFlat:
			units, ok := disc.Amount.Units()
			if !ok || units <= 0 || units > d.TotalPrice {
				t.Fatalf("flat discount %s of total %d", disc.Amount.literal, d.TotalPrice)
			}
		case DiscountPercentage:
			h, ok := disc.Amount.Hundredths()
			if !ok || h <= 0 || h > 100_00 {
				t.Fatalf("percentage discount %s", disc.Amount.literal)
			}
		default:
			t.Fatalf("discount type %q", disc.Type)
		}
	}
	// What the API returns must read back as the same deal.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back Deal
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if back.NetPrice != d.NetPrice || !sameDiscount(back.Discount, d.Discount) || !slices.Equal(back.Items, d.Items) {
		t.Fatalf("round trip changed the deal: %s", b)
	}
}

// wantValidationError fails unless err is a ValidationError naming fields.
func wantValidationError(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) == 0 {
		t.Fatalf("error %v (%T), want a *ValidationError naming fields", err, err)
	}
}

func FuzzValidateDraft(f *testing.F) {
	for _, s := range []string{
		`{"name":"Bundle","currency":"GBP","total_price":10000,"items":[{"id":"a","name":"A","price":6000},{"id":"b","name":"B","price":4000}],"discount":{"type":"percentage","amount":12.5}}`,
		`{"name":"N","currency":"gbp","total_price":10000,"items":[{"id":"a","name":"A","price":10000}],"discount":{"type":"percentage","amount":33.33}}`,
		`{"name":"N","currency":"eur","total_price":1,"items":[{"id":"a","name":"A","price":1}],"discount":{"type":"percentage","amount":50}}`,
		`{"name":"N","currency":"eur","total_price":3,"items":[{"id":"a","name":"A","price":3}],"discount":{"type":"percentage","amount":0.01}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"flat","amount":100}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"flat","amount":1e2}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"flat","amount":1.0e2}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"percentage","amount":1.25e1}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"percentage","amount":1e-1000000}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"percentage","amount":100.001}}`,
		`{"name":"N","currency":"usd","total_price":100,"items":[{"id":"a","name":"A","price":100}],"discount":{"type":"flat","amount":-1}}`,
		`{"name":"N","currency":"usd","total_price":0,"items":[{"id":"a","name":"A","price":0}],"discount":{"type":"flat","amount":1}}`,
		`{"name":"N","currency":"usd","total_price":1000000000000000000,"items":[{"id":"a","name":"A","price":1000000000000000}],"discount":{"type":"percentage","amount":99.99}}`,
		`{"name":"N","currency":"jpy","total_price":9223372036854775807,"items":[{"id":"a","name":"A","price":9223372036854775807}]}`,
		`{"name":"N","currency":"jpy","total_price":-2,"items":[{"id":"a","name":"A","price":-1},{"id":"b","name":"B","price":-1}]}`,
		`{"name":"N","currency":"gbp","total_price":2,"items":[{"id":"a","name":"A","price":1},{"id":"a","name":"B","price":1}]}`,
		`{"name":"  ","currency":"gb","total_price":1,"items":[],"status":"lost"}`,
		`{"name":"N\u0000","currency":"GBP","total_price":1,"items":[{"id":"\u0000","name":"A","price":1}],"discount":{"type":"bogus","amount":"1"}}`,
		`{"name":"N","currency":"gbp","total_price":1,"items":[{"id":"a","name":"A","price":1}],"discount":null,"status":"sold"}`,
		`{}`,
		`{"discount":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var dr Draft
		if err := json.Unmarshal(data, &dr); err != nil {
			return
		}
		items := slices.Clone(dr.Items)
		d, err := New("deal-1", "seller-1", dr)
		if err != nil {
			wantValidationError(t, err)
			return
		}
		if d.ID != "deal-1" || d.Seller != "seller-1" || d.Version != 1 {
			t.Fatalf("server fields %q %q %d", d.ID, d.Seller, d.Version)
		}
		checkDeal(t, d)
		if !slices.Equal(dr.Items, items) {
			t.Fatal("New changed the draft's items")
		}
		if &d.Items[0] == &dr.Items[0] {
			t.Fatal("the deal shares its items with the draft")
		}
		// Validation is idempotent: the normalised deal, submitted again,
		// is the same deal.
		again, err := New(d.ID, d.Seller, Draft{Name: d.Name, Items: d.Items, TotalPrice: d.TotalPrice,
			Currency: d.Currency, Discount: d.Discount, Status: d.Status})
		if err != nil {
			t.Fatalf("the normalised deal is refused: %v", err)
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("normalising twice changed the deal:\n%+v\n%+v", d, again)
		}
	})
}

// patchBase is the deal the patch fuzz target changes.
func patchBase(t testing.TB) Deal {
	d, err := New("deal-1", "seller-1", Draft{
		Name: "Winter bundle", Currency: "gbp", TotalPrice: 10000,
		Items:    []Item{{ID: "a", Name: "A", Price: 6000}, {ID: "b", Name: "B", Price: 4000}},
		Discount: &Discount{Type: DiscountPercentage, Amount: Amount{literal: "12.5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func FuzzApplyPatch(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"name":"Summer bundle"}`,
		`{"name":"Winter bundle"}`,
		`{"name":null}`,
		`{"discount":null}`,
		`{"discount":{"type":"flat","amount":10000}}`,
		`{"discount":{"type":"percentage","amount":12.50}}`,
		`{"discount":{"type":"percentage","amount":"12.5"}}`,
		`{"currency":"EUR"}`,
		`{"currency":"gbp","status":"sold"}`,
		`{"status":"available"}`,
		`{"total_price":1}`,
		`{"total_price":5,"items":[{"id":"x","name":"X","price":5}]}`,
		`{"total_price":5,"items":[{"id":"x","name":"X","price":5}],"discount":{"type":"flat","amount":6}}`,
		`{"items":[]}`,
		`{"items":null,"total_price":null,"currency":null,"status":null}`,
		`{"colour":"red"}`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	base := patchBase(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Patch
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		before, _ := json.Marshal(base)
		ch, err := Apply(base, p)
		if after, _ := json.Marshal(base); string(after) != string(before) {
			t.Fatalf("Apply changed the deal it was given:\n%s\n%s", before, after)
		}
		if err != nil {
			wantValidationError(t, err)
			return
		}
		d := ch.Deal
		checkDeal(t, d)
		if d.ID != base.ID || d.Seller != base.Seller || d.Version != base.Version || !d.CreatedAt.Equal(base.CreatedAt) {
			t.Fatalf("a patch changed server fields: %+v", d)
		}

		// Merge patch semantics: a field absent from the patch keeps its
		// value; the change record names exactly the fields that differ,
		// with their old values. (encoding/json matches member names
		// without regard to case, and so does the API's schema check:
		// "NAME" sets name. See TestPatchMemberNamesAreExact in api.)
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(data, &fields)
		has := func(k string) bool {
			for name := range fields {
				if strings.EqualFold(name, k) {
					return true
				}
			}
			return false
		}
		differs := map[string]bool{
			"name":        d.Name != base.Name,
			"total_price": d.TotalPrice != base.TotalPrice,
			"net_price":   d.NetPrice != base.NetPrice,
			"currency":    d.Currency != base.Currency,
			"discount":    !sameDiscount(d.Discount, base.Discount),
			"status":      d.Status != base.Status,
			"items":       !slices.Equal(d.Items, base.Items),
		}
		for k, changed := range differs {
			if changed && k != "net_price" && !has(k) {
				t.Fatalf("%s changed though the patch leaves it out", k)
			}
			if _, recorded := ch.Previous[k]; recorded != changed {
				t.Fatalf("%s: changed %v, recorded in previous %v (%v)", k, changed, recorded, ch.Previous)
			}
		}
		if len(ch.Previous) > len(differs) {
			t.Fatalf("previous has unknown fields: %v", ch.Previous)
		}
		if ch.Changed() != (len(ch.Previous) > 0) {
			t.Fatal("Changed disagrees with Previous")
		}

		// A merge patch is idempotent: applying it again changes nothing.
		again, err := Apply(d, p)
		if err != nil {
			t.Fatalf("the patch applied once is refused the second time: %v", err)
		}
		if again.Changed() {
			t.Fatalf("applying the patch twice changed %v", again.Previous)
		}
	})
}
