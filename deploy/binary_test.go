package deploy_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
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

// binarySettings parses the sources of the dealcast binary (cmd/dealcast
// and every package of the repository it imports, directly or not; no test
// files) and collects the string literal passed to every os.Getenv,
// os.LookupEnv or getenv call. Parsing the code, rather than keeping a list,
// means a renamed or new setting is seen here the moment it is written, and
// following the imports leaves out what only dealcast-dev or the tests read.
func binarySettings(t *testing.T) settings {
	t.Helper()
	settingsOnce.Do(func() {
		settingsVal = settings{names: map[string]bool{}}
		settingsErr = walkBinary(func(f *ast.File) { collectSettings(f, &settingsVal) })
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

// walkBinary parses the non-test Go files of cmd/dealcast and of every
// package of the service's module that it imports, directly or not, and
// calls fn with each. The module path comes from the repository's go.mod.
func walkBinary(fn func(f *ast.File)) error {
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)\s*$`).FindSubmatch(gomod)
	if m == nil {
		return errors.New("go.mod names no module")
	}
	prefix := string(m[1]) + "/"
	seen := map[string]bool{"cmd/dealcast": true}
	queue := []string{"cmd/dealcast"}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		entries, err := os.ReadDir(filepath.Join(repoRoot, filepath.FromSlash(dir)))
		if err != nil {
			return err
		}
		files := 0
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			path := filepath.Join(repoRoot, filepath.FromSlash(dir), name)
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files++
			fn(f)
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, prefix); ok && !seen[rel] {
					seen[rel] = true
					queue = append(queue, rel)
				}
			}
		}
		if files == 0 {
			return fmt.Errorf("%s: no Go files", dir)
		}
	}
	// The binary's settings live in internal/config: not reaching it means
	// the walk is broken.
	if !seen["internal/config"] {
		return fmt.Errorf("cmd/dealcast does not reach internal/config; it reaches %v", sortedKeys(seen))
	}
	return nil
}

// collectSettings adds the settings f reads to s.
func collectSettings(f *ast.File, s *settings) {
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
