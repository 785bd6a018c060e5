package deal

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Patch is a JSON merge patch (RFC 7396) of a deal's editable fields. A
// field that is absent stays as it is; discount: null removes the discount.
// Items, being an array, are replaced whole.
type Patch struct {
	Name       *string          `json:"name,omitempty" minLength:"1" maxLength:"200" doc:"New name."`
	TotalPrice *int64           `json:"total_price,omitempty" minimum:"0" maximum:"1000000000000000000" doc:"New total; must equal the sum of the items' prices after the patch."`
	Currency   *string          `json:"currency,omitempty" minLength:"3" maxLength:"3" doc:"New ISO 4217 code."`
	Discount   OptionalDiscount `json:"discount,omitempty" doc:"New discount, or null to remove it."`
	Status     *Status          `json:"status,omitempty" enum:"available,sold"`
	Items      []Item           `json:"items,omitempty" nullable:"false" minItems:"1" maxItems:"1000" doc:"Replaces every item."`

	// nulls are the fields set to null that cannot be removed; only
	// discount may be null in a merge patch of a deal.
	nulls []string
}

// UnmarshalJSON decodes the patch and remembers which fields were null:
// with pointer fields, null and absent would otherwise look the same.
func (p *Patch) UnmarshalJSON(b []byte) error {
	type plain Patch
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if err := exactMembers(fields, patchMembers); err != nil {
		return err
	}
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	p.nulls = nil
	for _, name := range []string{"name", "total_price", "currency", "status", "items"} {
		if v, ok := fields[name]; ok && string(v) == "null" {
			p.nulls = append(p.nulls, name)
		}
	}
	return nil
}

var patchMembers = []string{"name", "total_price", "currency", "discount", "status", "items"}

// exactMembers refuses member names that match a field only without
// regard to case: JSON names are case-sensitive, while encoding/json (and
// huma's schema check) would take "NAME" for "name".
func exactMembers(fields map[string]json.RawMessage, names []string) error {
	for k := range fields {
		if !slices.Contains(names, k) {
			return fmt.Errorf("unknown member %q (member names are case-sensitive)", k)
		}
	}
	return nil
}

// OptionalDiscount tells a discount that was left out of a patch from one
// that was set to null.
type OptionalDiscount struct {
	Set   bool
	Value *Discount
}

// UnmarshalJSON is called only when the field is present, null included.
func (o *OptionalDiscount) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	o.Value = new(Discount)
	return json.Unmarshal(b, o.Value)
}

// MarshalJSON writes the discount or null.
func (o OptionalDiscount) MarshalJSON() ([]byte, error) { return json.Marshal(o.Value) }

// Change is the result of applying a patch.
type Change struct {
	Deal Deal
	// Previous holds the old value of every field the patch changed, keyed
	// by its JSON name; empty when the patch changed nothing.
	Previous map[string]any
}

// Changed reports whether the patch altered any field.
func (c Change) Changed() bool { return len(c.Previous) > 0 }

// Apply applies p to d and validates the result. It does not bump the
// version or touch timestamps: the store does, and only when something changed.
func Apply(d Deal, p Patch) (Change, error) {
	if len(p.nulls) > 0 {
		errs := make([]FieldError, len(p.nulls))
		for i, f := range p.nulls {
			errs[i] = FieldError{Field: f, Message: "cannot be null: this field is required"}
		}
		return Change{}, &ValidationError{Fields: errs}
	}
	next := d.clone()
	if p.Name != nil {
		next.Name = *p.Name
	}
	if p.TotalPrice != nil {
		next.TotalPrice = *p.TotalPrice
	}
	if p.Currency != nil {
		next.Currency = *p.Currency
	}
	if p.Discount.Set {
		next.Discount = nil
		if p.Discount.Value != nil {
			disc := *p.Discount.Value
			next.Discount = &disc
		}
	}
	if p.Status != nil {
		next.Status = *p.Status
	}
	if p.Items != nil {
		next.Items = slices.Clone(p.Items)
	}
	if err := normalize(&next); err != nil {
		return Change{}, err
	}
	return Change{Deal: next, Previous: diff(d, next)}, nil
}

// diff returns the old values of the fields that differ between a and b.
func diff(a, b Deal) map[string]any {
	prev := map[string]any{}
	if a.Name != b.Name {
		prev["name"] = a.Name
	}
	if a.TotalPrice != b.TotalPrice {
		prev["total_price"] = a.TotalPrice
	}
	if a.NetPrice != b.NetPrice {
		prev["net_price"] = a.NetPrice
	}
	if a.Currency != b.Currency {
		prev["currency"] = a.Currency
	}
	if !sameDiscount(a.Discount, b.Discount) {
		prev["discount"] = a.Discount
	}
	if a.Status != b.Status {
		prev["status"] = a.Status
	}
	if !slices.Equal(a.Items, b.Items) {
		prev["items"] = a.Items
	}
	return prev
}

func sameDiscount(a, b *Discount) bool {
	if a == nil || b == nil {
		return a == b
	}
	ah, _ := a.Amount.Hundredths()
	bh, _ := b.Amount.Hundredths()
	return a.Type == b.Type && ah == bh
}
