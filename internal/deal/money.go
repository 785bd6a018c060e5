package deal

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
)

// Amount is a discount amount exactly as the client wrote it. JSON numbers
// pass through float64 in most decoders; keeping the literal lets a
// percentage like 12.35 be checked and stored without binary rounding.
type Amount struct {
	literal string
}

// AmountOf returns the amount for a whole number of units.
func AmountOf(units int64) Amount { return Amount{literal: strconv.FormatInt(units, 10)} }

// AmountFromHundredths returns the amount whose value is h/100.
func AmountFromHundredths(h int64) Amount {
	r := new(big.Rat).SetFrac64(h, 100)
	if r.IsInt() {
		return Amount{literal: r.Num().String()}
	}
	return Amount{literal: strings.TrimRight(r.FloatString(2), "0")}
}

var errNotNumber = errors.New("amount must be a JSON number")

// UnmarshalJSON keeps the number's literal text.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil || len(b) == 0 || b[0] == '"' || string(b) == "null" {
		return errNotNumber
	}
	a.literal = string(b)
	return nil
}

// maxLiteral bounds the text of an amount, and rat bounds its exponent:
// exact arithmetic on a literal like 1e-1000000 costs a great deal of CPU
// for a 10-byte input.
const maxLiteral = 32

// MarshalJSON writes the amount as a JSON number.
func (a Amount) MarshalJSON() ([]byte, error) {
	if a.literal == "" {
		return []byte("0"), nil
	}
	return []byte(a.literal), nil
}

// rat is the exact value, or nil when the literal is not a number.
func (a Amount) rat() *big.Rat {
	if len(a.literal) > maxLiteral {
		return nil
	}
	if i := strings.IndexAny(a.literal, "eE"); i >= 0 {
		if exp, err := strconv.Atoi(a.literal[i+1:]); err != nil || exp > 30 || exp < -30 {
			return nil
		}
	}
	r, ok := new(big.Rat).SetString(a.literal)
	if !ok {
		return nil
	}
	return r
}

// Units returns the amount as a whole number of minor units, and false when
// it is not a whole number that fits in int64.
func (a Amount) Units() (int64, bool) {
	r := a.rat()
	if r == nil || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// Hundredths returns the amount × 100, and false when the amount has more
// than two decimals or does not fit.
func (a Amount) Hundredths() (int64, bool) {
	r := a.rat()
	if r == nil {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// DiscountValue returns what the discount takes off total, in minor units:
// a flat amount as is, a percentage rounded half up to the minor unit.
// The discount must already be valid for total.
func DiscountValue(total int64, d *Discount) int64 {
	if d == nil {
		return 0
	}
	switch d.Type {
	case DiscountFlat:
		units, _ := d.Amount.Units()
		return units
	case DiscountPercentage:
		h, _ := d.Amount.Hundredths()
		// total × h / 10000, rounded half up; big.Int because total × h can
		// exceed int64 for large totals.
		n := new(big.Int).Mul(big.NewInt(total), big.NewInt(h))
		n.Add(n, big.NewInt(5000))
		n.Quo(n, big.NewInt(10000))
		return n.Int64()
	}
	return 0
}

// NetPrice is total minus the discount's value.
func NetPrice(total int64, d *Discount) int64 { return total - DiscountValue(total, d) }
