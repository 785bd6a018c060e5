package deal

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// stored is a deal as the store returns it: normalized, versioned, timestamped.
func stored(t *testing.T) Deal {
	t.Helper()
	draft := draftOf(600, 400)
	draft.Discount = pct(t, "12.5")
	d, err := New("deal-1", testSeller, draft)
	if err != nil {
		t.Fatal(err)
	}
	d.Version = 3
	d.CreatedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	d.UpdatedAt = d.CreatedAt.Add(time.Hour)
	return d
}

func patchOf(t *testing.T, js string) Patch {
	t.Helper()
	var p Patch
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		t.Fatalf("unmarshal patch %s: %v", js, err)
	}
	return p
}

// previousJSON is Previous in its JSON form, as it is stored and sent.
func previousJSON(t *testing.T, prev map[string]any) string {
	t.Helper()
	b, err := json.Marshal(prev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPatchUnmarshal(t *testing.T) {
	t.Parallel()
	p := patchOf(t, `{}`)
	if p.Name != nil || p.TotalPrice != nil || p.Currency != nil || p.Discount.Set || p.Status != nil || p.Items != nil || len(p.nulls) != 0 {
		t.Fatalf("empty patch %+v", p)
	}
	p = patchOf(t, `{"discount": null}`)
	if !p.Discount.Set || p.Discount.Value != nil || len(p.nulls) != 0 {
		t.Fatalf("discount null: %+v", p)
	}
	p = patchOf(t, `{"discount": {"type": "flat", "amount": 5}}`)
	if !p.Discount.Set || p.Discount.Value == nil || p.Discount.Value.Type != DiscountFlat {
		t.Fatalf("discount set: %+v", p)
	}
	p = patchOf(t, `{"name": null, "items": null, "total_price": null, "currency": null, "status": null, "discount": null}`)
	if !slices.Equal(p.nulls, []string{"name", "total_price", "currency", "status", "items"}) {
		t.Fatalf("nulls %v", p.nulls)
	}
	// Decoding into a used Patch forgets the earlier nulls.
	if err := json.Unmarshal([]byte(`{"name": "x"}`), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.nulls) != 0 {
		t.Fatalf("nulls survive a second decode: %v", p.nulls)
	}
	p = patchOf(t, `{"name": "N", "total_price": 5, "currency": "EUR", "status": "sold", "items": [{"id": "a", "name": "A", "price": 5}]}`)
	if *p.Name != "N" || *p.TotalPrice != 5 || *p.Currency != "EUR" || *p.Status != StatusSold || len(p.Items) != 1 {
		t.Fatalf("full patch %+v", p)
	}
	var bad Patch
	if err := json.Unmarshal([]byte(`[1]`), &bad); err == nil {
		t.Fatal("an array decoded as a patch")
	}
	if err := json.Unmarshal([]byte(`{"discount": {"type": "flat", "amount": "5"}}`), &bad); err == nil {
		t.Fatal("a string amount decoded")
	}
	// OptionalDiscount marshals as the discount or null.
	if b, _ := json.Marshal(OptionalDiscount{Set: true}); string(b) != "null" {
		t.Fatalf("null discount marshals as %s", b)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		patch    string
		check    func(Deal) bool
		previous string // JSON of Previous; "{}" for no change
	}{
		{"empty", `{}`, func(d Deal) bool { return true }, `{}`},
		{"same name", `{"name": "Bundle"}`, func(d Deal) bool { return d.Name == "Bundle" }, `{}`},
		{"name", `{"name": "New"}`, func(d Deal) bool { return d.Name == "New" }, `{"name":"Bundle"}`},
		{"currency case only", `{"currency": "GBP"}`, func(d Deal) bool { return d.Currency == "gbp" }, `{}`},
		{"currency", `{"currency": "EUR"}`, func(d Deal) bool { return d.Currency == "eur" }, `{"currency":"gbp"}`},
		{"status", `{"status": "sold"}`, func(d Deal) bool { return d.Status == StatusSold }, `{"status":"available"}`},
		{"same status", `{"status": "available"}`, func(d Deal) bool { return d.Status == StatusAvailable }, `{}`},
		{"same percentage, other spelling", `{"discount": {"type": "percentage", "amount": 12.50}}`,
			func(d Deal) bool { return d.NetPrice == 875 }, `{}`},
		{"same value, other type", `{"discount": {"type": "flat", "amount": 125}}`,
			func(d Deal) bool { return d.Discount.Type == DiscountFlat && d.NetPrice == 875 },
			`{"discount":{"type":"percentage","amount":12.5}}`},
		{"discount removed", `{"discount": null}`, func(d Deal) bool { return d.Discount == nil && d.NetPrice == 1000 },
			`{"discount":{"type":"percentage","amount":12.5},"net_price":875}`},
		{"discount changed", `{"discount": {"type": "percentage", "amount": 50}}`, func(d Deal) bool { return d.NetPrice == 500 },
			`{"discount":{"type":"percentage","amount":12.5},"net_price":875}`},
		{"items and total", `{"items": [{"id": "z", "name": "Z", "price": 999}], "total_price": 999}`,
			func(d Deal) bool { return d.TotalPrice == 999 && d.NetPrice == 874 && len(d.Items) == 1 },
			`{"items":[{"id":"i0","name":"Item 0","price":600},{"id":"i1","name":"Item 1","price":400}],"net_price":875,"total_price":1000}`},
		{"same items", `{"items": [{"id": "i0", "name": "Item 0", "price": 600}, {"id": "i1", "name": "Item 1", "price": 400}]}`,
			func(d Deal) bool { return len(d.Items) == 2 }, `{}`},
		{"items reordered", `{"items": [{"id": "i1", "name": "Item 1", "price": 400}, {"id": "i0", "name": "Item 0", "price": 600}]}`,
			func(d Deal) bool { return d.Items[0].ID == "i1" },
			`{"items":[{"id":"i0","name":"Item 0","price":600},{"id":"i1","name":"Item 1","price":400}]}`},
		{"everything", `{"name": "N", "currency": "usd", "status": "sold", "discount": null}`,
			func(d Deal) bool {
				return d.Name == "N" && d.Currency == "usd" && d.Status == StatusSold && d.Discount == nil
			},
			`{"currency":"gbp","discount":{"type":"percentage","amount":12.5},"name":"Bundle","net_price":875,"status":"available"}`},
	} {
		cur := stored(t)
		orig := stored(t)
		ch, err := Apply(cur, patchOf(t, tc.patch))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(ch.Deal) {
			t.Errorf("%s: patched deal %+v", tc.name, ch.Deal)
		}
		if got := previousJSON(t, ch.Previous); got != tc.previous {
			t.Errorf("%s: previous %s, want %s", tc.name, got, tc.previous)
		}
		if ch.Changed() != (tc.previous != `{}`) {
			t.Errorf("%s: Changed() = %v", tc.name, ch.Changed())
		}
		// Apply leaves version and timestamps to the store, and the input alone.
		if ch.Deal.Version != cur.Version || !ch.Deal.UpdatedAt.Equal(cur.UpdatedAt) || !ch.Deal.CreatedAt.Equal(cur.CreatedAt) ||
			ch.Deal.ID != cur.ID || ch.Deal.Seller != cur.Seller {
			t.Errorf("%s: server fields changed: %+v", tc.name, ch.Deal)
		}
		if !reflect.DeepEqual(cur, orig) {
			t.Errorf("%s: Apply modified its input: %+v", tc.name, cur)
		}
	}
}

func TestApplyDoesNotAlias(t *testing.T) {
	t.Parallel()
	cur := stored(t)
	p := patchOf(t, `{"items": [{"id": "z", "name": "Z", "price": 1000}], "discount": {"type": "flat", "amount": 10}}`)
	ch, err := Apply(cur, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Items[0].Price = 1
	p.Discount.Value.Type = DiscountPercentage
	if ch.Deal.Items[0].Price != 1000 || ch.Deal.Discount.Type != DiscountFlat {
		t.Fatalf("the result aliases the patch: %+v", ch.Deal)
	}
	ch2, err := Apply(cur, patchOf(t, `{"name": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	ch2.Deal.Items[0].Price = 5
	ch2.Deal.Discount.Type = DiscountFlat
	if cur.Items[0].Price != 600 || cur.Discount.Type != DiscountPercentage {
		t.Fatalf("the result aliases the current deal: %+v", cur)
	}
}

func TestApplyRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		patch  string
		fields []string
	}{
		{`{"name": null}`, []string{"name"}},
		{`{"items": null, "status": null}`, []string{"status", "items"}},
		{`{"total_price": null, "currency": null}`, []string{"total_price", "currency"}},
		{`{"name": ""}`, []string{"name"}},
		{`{"total_price": 1}`, []string{"total_price"}},
		{`{"items": [{"id": "a", "name": "A", "price": 1}]}`, []string{"total_price"}},
		{`{"items": []}`, []string{"items"}},
		{`{"currency": "abc"}`, []string{"currency"}},
		{`{"status": "gone"}`, []string{"status"}},
		{`{"discount": {"type": "flat", "amount": 1001}}`, []string{"discount.amount"}},
		{`{"discount": {"type": "percentage", "amount": 0.001}}`, []string{"discount.amount"}},
		{`{"items": [{"id": "a", "name": "A", "price": 10}], "total_price": 10, "discount": {"type": "flat", "amount": 11}}`, []string{"discount.amount"}},
	} {
		_, err := Apply(stored(t), patchOf(t, tc.patch))
		if got := fieldsOf(t, err); !slices.Equal(got, tc.fields) {
			t.Errorf("%s: error names %v, want %v", tc.patch, got, tc.fields)
		}
	}
	// A flat discount that the new total no longer covers is refused.
	cur := stored(t)
	ch, err := Apply(cur, patchOf(t, `{"discount": {"type": "flat", "amount": 900}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(ch.Deal, patchOf(t, `{"items": [{"id": "a", "name": "A", "price": 500}], "total_price": 500}`))
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"discount.amount"}) {
		t.Fatalf("shrunk total under a flat discount: %v", got)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := stored(t)
	if prev := diff(a, a); len(prev) != 0 {
		t.Fatalf("diff of a deal with itself: %v", prev)
	}
	b := a.clone()
	b.Version, b.UpdatedAt, b.CreatedAt, b.ID, b.Seller = 9, time.Now(), time.Now(), "other", "other"
	if prev := diff(a, b); len(prev) != 0 {
		t.Fatalf("server-owned fields count as changes: %v", prev)
	}
	b = a.clone()
	b.Discount = nil
	b.NetPrice = 1000
	prev := diff(a, b)
	if got := previousJSON(t, prev); got != `{"discount":{"type":"percentage","amount":12.5},"net_price":875}` {
		t.Fatalf("previous %s", got)
	}
	prev = diff(b, a)
	if got := previousJSON(t, prev); got != `{"discount":null,"net_price":1000}` {
		t.Fatalf("previous when adding a discount %s", got)
	}
	if v, ok := prev["discount"]; !ok || v.(*Discount) != nil {
		t.Fatalf("previous discount should be present and nil, got %v", v)
	}
	// The previous items are the old slice's values, not affected by the new one.
	b = a.clone()
	b.Items[0].Name = "changed"
	prev = diff(a, b)
	if items := prev["items"].([]Item); items[0].Name != "Item 0" {
		t.Fatalf("previous items %v", items)
	}

	for _, tc := range []struct {
		a, b *Discount
		same bool
	}{
		{nil, nil, true},
		{nil, flat(1), false},
		{flat(1), nil, false},
		{flat(1), flat(1), true},
		{flat(1), flat(2), false},
		{pct(t, "12.5"), pct(t, "12.50"), true},
		{pct(t, "12.5"), pct(t, "12.51"), false},
		{pct(t, "1"), flat(1), false},
	} {
		if got := sameDiscount(tc.a, tc.b); got != tc.same {
			t.Errorf("sameDiscount(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}
