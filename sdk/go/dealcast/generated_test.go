package dealcast_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestGeneratedMatchesSpec catches a client.gen.go left behind by a change
// of openapi-3.0.yaml (whose own freshness cmd/dealcast's tests check):
// every operation has its client method, and every schema its type with
// exactly the schema's properties. Run `make sdk` when it fails.
func TestGeneratedMatchesSpec(t *testing.T) {
	raw, err := os.ReadFile("openapi-3.0.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			OperationID string `yaml:"operationId"`
		}
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "client.gen.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{}
	fields := map[string][]string{} // struct type -> json names
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil && len(d.Recv.List) == 1 {
				if star, ok := d.Recv.List[0].Type.(*ast.StarExpr); ok && isIdent(star.X, "Client") {
					methods[d.Name.Name] = true
				}
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				ts, ok := s.(*ast.TypeSpec)
				if !ok {
					continue
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				names := []string{}
				for _, fl := range st.Fields.List {
					if fl.Tag == nil {
						continue
					}
					tag, _ := strconv.Unquote(fl.Tag.Value)
					name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
					if name != "" && name != "-" {
						names = append(names, name)
					}
				}
				slices.Sort(names)
				fields[ts.Name.Name] = names
			}
		}
	}

	ops := 0
	for path, item := range spec.Paths {
		for method, op := range item {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId: the generated method would be named after the path", strings.ToUpper(method), path)
				continue
			}
			ops++
			if name := pascal(op.OperationID); !methods[name] {
				t.Errorf("operation %s: no method Client.%s in client.gen.go", op.OperationID, name)
			}
		}
	}
	if ops == 0 {
		t.Fatal("no operations in openapi-3.0.yaml")
	}
	for name, schema := range spec.Components.Schemas {
		got, ok := fields[name]
		if !ok {
			t.Errorf("schema %s: no type %s in client.gen.go", name, name)
			continue
		}
		want := make([]string, 0, len(schema.Properties))
		for p := range schema.Properties {
			want = append(want, p)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s: generated fields %v, spec properties %v", name, got, want)
		}
	}
}

// pascal is oapi-codegen's name for an operationId such as create-deal.
func pascal(id string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(id, func(r rune) bool { return r == '-' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
