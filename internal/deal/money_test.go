package deal

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

func mustAmount(t *testing.T, literal string) Amount {
	t.Helper()
	var a Amount
	if err := json.Unmarshal([]byte(literal), &a); err != nil {
		t.Fatalf("unmarshal %s: %v", literal, err)
	}
	return a
}

func TestAmountJSON(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{"0", "12", "12.5", "12.50", "0.01", "1e2", "1.25e1", "-3", "100.00", "123456789012345678901234567890"} {
		a := mustAmount(t, lit)
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != lit {
			t.Errorf("%s round-trips as %s", lit, b)
		}
	}
	for _, bad := range []string{`"12"`, `"abc"`, `true`, `null`, `{}`, `[1]`} {
		var a Amount
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("%s accepted as an amount", bad)
		}
	}
	// Direct calls with non-JSON text are refused as well.
	for _, bad := range []string{``, `abc`, `"1"`} {
		var a Amount
		if err := a.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%q) accepted", bad)
		}
	}
	// The zero Amount is written as 0, never as an empty (invalid) JSON value.
	b, err := json.Marshal(struct{ A Amount }{})
	if err != nil || string(b) != `{"A":0}` {
		t.Fatalf("zero amount marshals as %s (%v)", b, err)
	}
	// Inside a discount, the literal survives a round trip exactly (no float64).
	var d Discount
	if err := json.Unmarshal([]byte(`{"type":"percentage","amount":33.33}`), &d); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(d); string(b) != `{"type":"percentage","amount":33.33}` {
		t.Fatalf("discount round-trips as %s", b)
	}
}

func TestAmountUnits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lit   string
		units int64
		ok    bool
	}{
		{"0", 0, true},
		{"1000", 1000, true},
		{"1000.0", 1000, true},
		{"1000.000", 1000, true},
		{"1e3", 1000, true},
		{"1.5e1", 15, true},
		{"-7", -7, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"1e30", 0, false},
		{"10.5", 0, false},
		{"0.1", 0, false},
		{"1e-1", 0, false},
	} {
		got, ok := mustAmount(t, tc.lit).Units()
		if got != tc.units || ok != tc.ok {
			t.Errorf("Units(%s) = %d, %v; want %d, %v", tc.lit, got, ok, tc.units, tc.ok)
		}
	}
	if _, ok := (Amount{}).Units(); ok {
		t.Error("the zero Amount has units")
	}
}

func TestAmountHundredths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lit string
		h   int64
		ok  bool
	}{
		{"0", 0, true},
		{"12.5", 1250, true},
		{"12.50", 1250, true},
		{"12.500000", 1250, true},
		{"33.33", 3333, true},
		{"0.01", 1, true},
		{"1e-2", 1, true},
		{"1.25e1", 1250, true},
		{"100", 10000, true},
		{"-5", -500, true},
		{"12.345", 0, false},
		{"0.001", 0, false},
		{"1e-3", 0, false},
		{"92233720368547758.07", math.MaxInt64, true},
		{"92233720368547758.08", 0, false},
		{"1e30", 0, false},
	} {
		got, ok := mustAmount(t, tc.lit).Hundredths()
		if got != tc.h || ok != tc.ok {
			t.Errorf("Hundredths(%s) = %d, %v; want %d, %v", tc.lit, got, ok, tc.h, tc.ok)
		}
	}
	if _, ok := (Amount{}).Hundredths(); ok {
		t.Error("the zero Amount has hundredths")
	}
}

func TestAmountConstructors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h    int64
		want string
	}{
		{1250, "12.5"}, {1010, "10.1"}, {1, "0.01"}, {10, "0.1"}, {99, "0.99"}, {100, "1"}, {10000, "100"},
		{3333, "33.33"}, {0, "0"}, {-150, "-1.5"}, {math.MaxInt64, "92233720368547758.07"},
	} {
		a := AmountFromHundredths(tc.h)
		if b, _ := a.MarshalJSON(); string(b) != tc.want {
			t.Errorf("AmountFromHundredths(%d) = %s, want %s", tc.h, b, tc.want)
		}
		if h, ok := a.Hundredths(); !ok || h != tc.h {
			t.Errorf("AmountFromHundredths(%d).Hundredths() = %d, %v", tc.h, h, ok)
		}
	}
	for _, u := range []int64{0, 1, 1000, -5, math.MaxInt64, math.MinInt64} {
		a := AmountOf(u)
		if got, ok := a.Units(); !ok || got != u {
			t.Errorf("AmountOf(%d).Units() = %d, %v", u, got, ok)
		}
	}
}

func pct(t *testing.T, lit string) *Discount {
	return &Discount{Type: DiscountPercentage, Amount: mustAmount(t, lit)}
}

func flat(units int64) *Discount { return &Discount{Type: DiscountFlat, Amount: AmountOf(units)} }

// halfUp is total × hundredths / 10000 rounded half up, computed the slow,
// obvious way, to check DiscountValue against.
func halfUp(total, hundredths int64) int64 {
	r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(total), big.NewInt(hundredths)), big.NewInt(10000))
	r.Add(r, big.NewRat(1, 2))
	return new(big.Int).Div(r.Num(), r.Denom()).Int64() // floor, for non-negative values
}

func TestDiscountValueAndNetPrice(t *testing.T) {
	t.Parallel()
	const maxTotal = int64(MaxItems) * MaxItemPrice // the largest total a valid deal can have
	for _, tc := range []struct {
		name     string
		total    int64
		discount *Discount
		value    int64
	}{
		{"none", 1000, nil, 0},
		{"flat", 1000, flat(100), 100},
		{"flat everything", 1000, flat(1000), 1000},
		{"124.875 rounds up", 999, pct(t, "12.5"), 125},
		{"2.5 rounds up (not to even)", 25, pct(t, "10"), 3},
		{"0.5 rounds up", 5, pct(t, "10"), 1},
		{"1.5 rounds up", 15, pct(t, "10"), 2},
		{"half a unit", 1, pct(t, "50"), 1},
		{"0.4999 rounds down", 4999, pct(t, "0.01"), 0},
		{"0.5 exactly from hundredths", 5000, pct(t, "0.01"), 1},
		{"0.9999 rounds up", 3, pct(t, "33.33"), 1},
		{"33.33 of 10000", 10000, pct(t, "33.33"), 3333},
		{"100 percent", 12345, pct(t, "100"), 12345},
		{"zero total", 0, pct(t, "50"), 0},
		{"largest total, 33.33", maxTotal, pct(t, "33.33"), 333_300_000_000_000_000},
		{"largest total, 100", maxTotal, pct(t, "100"), maxTotal},
		{"largest total, 0.01", maxTotal, pct(t, "0.01"), 100_000_000_000_000},
		{"odd large total, 0.01", 999_999_999_999_999_999, pct(t, "0.01"), 100_000_000_000_000},
		{"odd large total, 99.99", 999_999_999_999_999_999, pct(t, "99.99"), 999_899_999_999_999_999},
		{"max int64, 100", math.MaxInt64, pct(t, "100"), math.MaxInt64},
		{"max int64, 50", math.MaxInt64, pct(t, "50"), math.MaxInt64/2 + 1},
		{"max int64, 12.34", math.MaxInt64, pct(t, "12.34"), halfUp(math.MaxInt64, 1234)},
		{"largest total, flat", maxTotal, flat(maxTotal - 1), maxTotal - 1},
	} {
		got := DiscountValue(tc.total, tc.discount)
		if got != tc.value {
			t.Errorf("%s: DiscountValue(%d) = %d, want %d", tc.name, tc.total, got, tc.value)
		}
		if net := NetPrice(tc.total, tc.discount); net != tc.total-tc.value {
			t.Errorf("%s: NetPrice(%d) = %d, want %d", tc.name, tc.total, net, tc.total-tc.value)
		}
	}
}

// TestDiscountValueMatchesHalfUp compares DiscountValue with exact rational
// arithmetic over many totals and every percentage step from 0.01 to 100.
func TestDiscountValueMatchesHalfUp(t *testing.T) {
	t.Parallel()
	totals := []int64{1, 2, 3, 7, 25, 99, 101, 999, 1001, 12345, 99999, 1 << 40, 1_000_000_000_000_000_000 - 1}
	for _, total := range totals {
		for h := int64(1); h <= 10000; h += 7 {
			d := &Discount{Type: DiscountPercentage, Amount: AmountFromHundredths(h)}
			if got, want := DiscountValue(total, d), halfUp(total, h); got != want {
				t.Fatalf("DiscountValue(%d, %d/100 %%) = %d, want %d", total, h, got, want)
			}
			if net := NetPrice(total, d); net < 0 || net > total {
				t.Fatalf("NetPrice(%d, %d/100 %%) = %d out of [0, total]", total, h, net)
			}
		}
	}
}
