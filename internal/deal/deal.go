// Package deal holds what a deal is and the rules it must obey: validation,
// money arithmetic, merge patches and the change record sent to buyers. It
// does no I/O; the store persists what this package has checked.
package deal

import (
	"encoding/json"
	"time"
)

// Status is where a deal stands in its life.
type Status string

// The statuses a deal can have.
const (
	StatusAvailable Status = "available"
	StatusSold      Status = "sold"
)

// DiscountType says how a discount's amount is read.
type DiscountType string

// The kinds of discount.
const (
	DiscountFlat       DiscountType = "flat"
	DiscountPercentage DiscountType = "percentage"
)

// Limits of a deal beyond which input is refused.
const (
	MaxNameLen   = 200
	MaxItems     = 1000
	MaxItemIDLen = 100
	// MaxItemPrice keeps every sum and product of prices inside int64
	// (1000 items × 10^15 < 2^63) while allowing any real-world price.
	MaxItemPrice = 1_000_000_000_000_000
)

// Item is one line of a deal.
type Item struct {
	ID    string `json:"id" minLength:"1" maxLength:"100" doc:"Seller's reference for the item, unique within the deal." example:"sku-1"`
	Name  string `json:"name" minLength:"1" maxLength:"200" doc:"Item name." example:"Bundle"`
	Price int64  `json:"price" minimum:"0" maximum:"1000000000000000" doc:"Price in the currency's minor unit." example:"10000"`
}

// Discount reduces a deal's total price.
type Discount struct {
	_      struct{}     `nullable:"true"`
	Type   DiscountType `json:"type" enum:"flat,percentage" doc:"flat: amount is in minor units; percentage: amount is a percent with up to two decimals." example:"flat"`
	Amount Amount       `json:"amount" doc:"Minor units for flat (0 < amount <= total_price); percent for percentage (0 < amount <= 100, up to two decimals)." example:"1000"`
}

// Deal is a seller's offer as buyers and the seller see it.
type Deal struct {
	ID         string    `json:"id" format:"uuid" doc:"Deal ID."`
	Seller     string    `json:"seller" format:"uuid" doc:"ID of the seller who owns the deal."`
	Name       string    `json:"name" example:"Winter bundle"`
	TotalPrice int64     `json:"total_price" doc:"Sum of the items' prices, in minor units." example:"10000"`
	NetPrice   int64     `json:"net_price" doc:"Total minus discount, rounded half up to the minor unit; computed by the server." example:"9000"`
	Currency   string    `json:"currency" doc:"ISO 4217 code, lowercase." example:"gbp"`
	Discount   *Discount `json:"discount" doc:"Optional discount; null when there is none."`
	Status     Status    `json:"status" enum:"available,sold"`
	Items      []Item    `json:"items" nullable:"false"`
	Version    int64     `json:"version" doc:"Starts at 1 and grows by one on every change; also the ETag." example:"1"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Draft is what a seller submits to create a deal: the deal without the
// fields the server owns.
type Draft struct {
	Name       string    `json:"name" minLength:"1" maxLength:"200" doc:"Deal name." example:"Winter bundle"`
	Items      []Item    `json:"items" nullable:"false" minItems:"1" maxItems:"1000" doc:"The items; ids unique within the deal."`
	TotalPrice int64     `json:"total_price" minimum:"0" maximum:"1000000000000000000" doc:"Must equal the sum of items[].price." example:"10000"`
	Currency   string    `json:"currency" minLength:"3" maxLength:"3" doc:"ISO 4217 code in any case; stored lowercase." example:"gbp"`
	Discount   *Discount `json:"discount,omitempty" doc:"Optional discount."`
	Status     Status    `json:"status,omitempty" enum:"available,sold" doc:"Defaults to available when omitted."`
}

var draftMembers = []string{"name", "items", "total_price", "currency", "discount", "status"}

// UnmarshalJSON decodes a draft whose member names are exactly the
// fields' names (see exactMembers).
func (d *Draft) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if err := exactMembers(fields, draftMembers); err != nil {
		return err
	}
	type plain Draft
	return json.Unmarshal(b, (*plain)(d))
}

// clone returns a deep copy, so a patched deal never shares items with the original.
func (d Deal) clone() Deal {
	c := d
	c.Items = append([]Item(nil), d.Items...)
	if d.Discount != nil {
		disc := *d.Discount
		c.Discount = &disc
	}
	return c
}

// MarshalItems encodes items for storage.
func MarshalItems(items []Item) ([]byte, error) { return json.Marshal(items) }
