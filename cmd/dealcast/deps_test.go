package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dealcast/dealcast"

// goList runs `go list` with args in the module and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// The product binary ships without the development tools: no embedded
// Temporal server, no Web UI, no benchmark, no browser driver.
func TestProductBinaryLinksNoTools(t *testing.T) {
	deps := goList(t, "-deps", ".")
	if len(deps) < 50 {
		t.Fatalf("go list -deps found only %d packages: %v", len(deps), deps)
	}
	forbidden := []string{
		"go.temporal.io/server",
		"github.com/temporalio/ui-server",
		module + "/internal/devtemporal",
		module + "/bench",
		"github.com/chromedp",
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("cmd/dealcast links %s", dep)
			}
		}
	}
}

// Imports run one way: nothing under internal/ imports a top-level package
// of the module, except the embedded migrations in schema.
func TestInternalImportsNoTopLevelPackage(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/internal/...")
	if len(lines) < 5 {
		t.Fatalf("go list found only %d internal packages", len(lines))
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			rest, ok := strings.CutPrefix(imp, module+"/")
			if !ok || strings.HasPrefix(rest, "internal/") || rest == "schema" {
				continue
			}
			t.Errorf("%s imports %s", pkg, imp)
		}
	}
}
