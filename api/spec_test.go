package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/api"
)

// TestEveryOperationIsDocumented: integrators generate clients and read
// docs from the OpenAPI document, so each operation carries an ID, a
// summary, a description and its error responses, and the merge-patch
// operation names both of its content types.
func TestEveryOperationIsDocumented(t *testing.T) {
	t.Parallel()
	_, a := api.New(api.Deps{})
	n := 0
	for path, item := range a.OpenAPI().Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
			http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
		} {
			if op == nil {
				continue
			}
			n++
			if op.OperationID == "" || op.Summary == "" || op.Description == "" {
				t.Errorf("%s %s: operation ID %q, summary %q, description %q: each is required", method, path, op.OperationID, op.Summary, op.Description)
			}
			var codes []string
			for code := range op.Responses {
				codes = append(codes, code)
			}
			if !slices.Contains(codes, "401") || !slices.ContainsFunc(codes, func(c string) bool { return strings.HasPrefix(c, "4") && c != "401" }) {
				t.Errorf("%s %s documents too few error responses: %v", method, path, codes)
			}
			if method == http.MethodPatch {
				if rb := op.RequestBody; rb == nil || rb.Content["application/merge-patch+json"] == nil || rb.Content["application/json"] == nil {
					t.Errorf("PATCH %s does not document both merge-patch and plain JSON bodies", path)
				}
			}
		}
	}
	if n < 21 {
		t.Fatalf("found %d operations, want at least the contract's 21", n)
	}
}

// TestNoBodySchemaHasADefault: openapi-typescript (with its default
// options) and other generators read a schema's default as "always
// present", which makes a field the server fills in required to send.
// Defaults are described in the text instead; query parameters keep theirs,
// since a parameter's own required flag governs it.
func TestNoBodySchemaHasADefault(t *testing.T) {
	t.Parallel()
	_, a := api.New(api.Deps{})
	seen := map[*huma.Schema]bool{}
	var walk func(where string, s *huma.Schema)
	walk = func(where string, s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if s.Default != nil {
			t.Errorf("%s has default %v; describe it instead", where, s.Default)
		}
		for name, p := range s.Properties {
			walk(where+"."+name, p)
		}
		walk(where+"[]", s.Items)
		if ap, ok := s.AdditionalProperties.(*huma.Schema); ok {
			walk(where+"{}", ap)
		}
		for _, list := range [][]*huma.Schema{s.AllOf, s.AnyOf, s.OneOf} {
			for _, sub := range list {
				walk(where, sub)
			}
		}
	}
	schemas := a.OpenAPI().Components.Schemas.Map()
	if _, ok := schemas["Draft"]; !ok {
		t.Fatal("no Draft schema: the walk would check nothing of the create-deal body")
	}
	for name, s := range schemas {
		walk(name, s)
	}
}
