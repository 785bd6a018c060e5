package api

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/deal"
)

// The domain types that read and write their own JSON are documented here:
// package deal knows no HTTP framework, so the API maps each to a type
// whose only job is to describe it.
func registerDomainSchemas(r huma.Registry) {
	r.RegisterTypeAlias(reflect.TypeFor[deal.Amount](), reflect.TypeFor[amountSchema]())
	r.RegisterTypeAlias(reflect.TypeFor[deal.OptionalDiscount](), reflect.TypeFor[optionalDiscountSchema]())
}

// amountSchema describes deal.Amount: a JSON number.
type amountSchema struct{}

// Schema is double, so generated clients do not truncate amounts to float32.
func (amountSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeNumber, Format: "double", Examples: []any{1000}}
}

// optionalDiscountSchema describes deal.OptionalDiscount: a Discount or null.
type optionalDiscountSchema struct{}

func (optionalDiscountSchema) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeFor[deal.Discount](), true, "Discount")
}
