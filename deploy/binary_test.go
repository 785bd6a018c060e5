package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = ".."

// settings are the environment variable names the dealcast binary reads.
type settings struct {
	names map[string]bool
	// otel is true when the binary links an OTLP exporter, whose SDK reads
	// the standard OTEL_* variables itself.
	otel bool
}

// has reports whether the binary reads name.
func (s settings) has(name string) bool {
	return s.names[name] || (s.otel && strings.HasPrefix(name, "OTEL_")) || goRuntimeSettings[name]
}

// goRuntimeSettings are read by the Go runtime of every Go binary.
var goRuntimeSettings = map[string]bool{"GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true}

var (
	settingsOnce sync.Once
	settingsVal  settings
	settingsErr  error
)

// binarySettings parses the binary's non-test sources (internal/config first
// of all, and everything else under cmd/ and internal/) and collects the
// string literal passed to every os.Getenv, os.LookupEnv or getenv call.
// Parsing the code, rather than keeping a list, means a renamed or new
// setting is seen here the moment it is written.
func binarySettings(t *testing.T) settings {
	t.Helper()
	settingsOnce.Do(func() {
		settingsVal = settings{names: map[string]bool{}}
		for _, dir := range []string{"cmd", "internal"} {
			settingsErr = filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
					return err
				}
				// dbtest is the tests' helper, not part of the binary.
				if strings.Contains(filepath.ToSlash(path), "internal/dbtest/") {
					return nil
				}
				return collectSettings(path, &settingsVal)
			})
			if settingsErr != nil {
				return
			}
		}
	})
	if settingsErr != nil {
		t.Fatalf("parse the binary's sources: %v", settingsErr)
	}
	// The contract's settings must be found, or the parsing is broken.
	for _, n := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "DEALCAST_HTTP_ADDR", "DEALCAST_JWT_SECRET", "DEALCAST_JWKS_URL", "DEALCAST_WEBHOOK_ALLOW_PRIVATE", "DEALCAST_SECRET_KEY"} {
		if !settingsVal.names[n] {
			t.Fatalf("setting %s not found in the binary's sources; found %v", n, sortedKeys(settingsVal.names))
		}
	}
	return settingsVal
}

func collectSettings(path string, s *settings) error {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "go.opentelemetry.io/otel/exporters/otlp/") {
			s.otel = true
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		var name string
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok && x.Name == "os" {
				name = fn.Sel.Name
			}
		case *ast.Ident:
			name = fn.Name
		}
		switch strings.ToLower(name) {
		case "getenv", "lookupenv":
		default:
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if v, err := strconv.Unquote(lit.Value); err == nil {
				s.names[v] = true
			}
		}
		return true
	})
	return nil
}

// binaryCommands are the subcommands cmd/dealcast's run dispatches on.
func binaryCommands(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot, "cmd", "dealcast", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "run" {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						cmds = append(cmds, v)
					}
				}
			}
			return true
		})
	}
	if !slices.Contains(cmds, "api") || !slices.Contains(cmds, "migrate") {
		t.Fatalf("commands of %s not found: %v", path, cmds)
	}
	return cmds
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// readFile reads a file relative to the repository root.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
