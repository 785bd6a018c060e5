package deal

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// FieldError names one field that breaks a rule. Field is a JSON path
// relative to the deal, such as "items[2].price".
type FieldError struct {
	Field   string
	Message string
	Value   any
}

// ValidationError lists every rule a deal breaks.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Field + ": " + f.Message
	}
	return "invalid deal: " + strings.Join(msgs, "; ")
}

type checker struct{ errs []FieldError }

func (c *checker) add(field, msg string, value any) {
	c.errs = append(c.errs, FieldError{Field: field, Message: msg, Value: value})
}

// text checks a free-text field: length in characters, not blank, and no
// NUL or invalid UTF-8, which neither JSONB nor TEXT columns can hold.
func (c *checker) text(field, s string, maxLen int) {
	switch {
	case !utf8.ValidString(s):
		c.add(field, "must be valid UTF-8", nil)
	case strings.ContainsRune(s, 0):
		c.add(field, "must not contain NUL characters", nil)
	case strings.TrimSpace(s) == "":
		c.add(field, "must not be blank", s)
	case utf8.RuneCountInString(s) > maxLen:
		c.add(field, fmt.Sprintf("must be at most %d characters", maxLen), nil)
	}
}

// normalize validates d and, when it is valid, puts it in canonical form:
// lowercase currency, canonical discount amount, net price computed.
func normalize(d *Deal) error {
	var c checker
	c.text("name", d.Name, MaxNameLen)

	switch n := len(d.Items); {
	case n == 0:
		c.add("items", "must have at least 1 item", nil)
	case n > MaxItems:
		c.add("items", fmt.Sprintf("must have at most %d items", MaxItems), n)
	}
	seen := make(map[string]int, len(d.Items))
	var sum int64
	pricesValid := true
	for i, it := range d.Items {
		at := fmt.Sprintf("items[%d]", i)
		c.text(at+".id", it.ID, MaxItemIDLen)
		c.text(at+".name", it.Name, MaxNameLen)
		if first, dup := seen[it.ID]; dup {
			c.add(at+".id", fmt.Sprintf("duplicates items[%d].id", first), it.ID)
		} else {
			seen[it.ID] = i
		}
		if it.Price < 0 || it.Price > MaxItemPrice {
			c.add(at+".price", fmt.Sprintf("must be between 0 and %d", int64(MaxItemPrice)), it.Price)
			pricesValid = false
		} else {
			sum += it.Price
		}
	}
	// The sum means something only when every price is in range.
	if pricesValid && len(d.Items) > 0 && d.TotalPrice != sum {
		c.add("total_price", fmt.Sprintf("must equal the sum of items[].price (%d)", sum), d.TotalPrice)
	}

	if cur, ok := NormalizeCurrency(d.Currency); ok {
		d.Currency = cur
	} else {
		c.add("currency", "must be an ISO 4217 currency code", d.Currency)
	}

	if d.Status == "" {
		d.Status = StatusAvailable
	}
	if d.Status != StatusAvailable && d.Status != StatusSold {
		c.add("status", "must be available or sold", d.Status)
	}

	if disc := d.Discount; disc != nil {
		switch disc.Type {
		case DiscountFlat:
			units, ok := disc.Amount.Units()
			switch {
			case !ok:
				c.add("discount.amount", "a flat discount must be a whole number of minor units", disc.Amount)
			case units <= 0 || units > d.TotalPrice:
				c.add("discount.amount", fmt.Sprintf("a flat discount must be > 0 and <= total_price (%d)", d.TotalPrice), units)
			default:
				disc.Amount = AmountOf(units)
			}
		case DiscountPercentage:
			h, ok := disc.Amount.Hundredths()
			switch {
			case !ok:
				c.add("discount.amount", "a percentage discount has at most two decimals", disc.Amount)
			case h <= 0 || h > 100_00:
				c.add("discount.amount", "a percentage discount must be > 0 and <= 100", disc.Amount)
			default:
				disc.Amount = AmountFromHundredths(h)
			}
		default:
			c.add("discount.type", "must be flat or percentage", disc.Type)
		}
	}

	if len(c.errs) > 0 {
		return &ValidationError{Fields: c.errs}
	}
	d.NetPrice = NetPrice(d.TotalPrice, d.Discount)
	return nil
}

// New builds a deal from a seller's draft, checking every rule. The deal
// gets version 1; the store sets the timestamps.
func New(id, seller string, draft Draft) (Deal, error) {
	d := Deal{
		ID:         id,
		Seller:     seller,
		Name:       draft.Name,
		TotalPrice: draft.TotalPrice,
		Currency:   draft.Currency,
		Discount:   draft.Discount,
		Status:     draft.Status,
		Items:      draft.Items,
		Version:    1,
	}
	d = d.clone()
	if err := normalize(&d); err != nil {
		return Deal{}, err
	}
	return d, nil
}
