package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedOpenAPI fails when a committed API description differs from
// what the code generates: api/openapi.yaml (3.1, for integrators) and the
// 3.0 form the Go SDK is generated from.
func TestCommittedOpenAPI(t *testing.T) {
	for _, c := range []struct {
		file string
		args []string
		fix  string
	}{
		{"api/openapi.yaml", []string{"--yaml"}, "make openapi-file"},
		{"sdk/go/dealcast/openapi-3.0.yaml", []string{"--version", "3.0", "--yaml"}, "make sdk"},
	} {
		var want bytes.Buffer
		if err := runOpenAPI(c.args, &want); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(c.file)))
		if err != nil {
			t.Fatalf("%v (run %s)", err, c.fix)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s is stale: it differs from `dealcast openapi %s` at line %d; run %s and commit the result",
				c.file, strings.Join(c.args, " "), firstDifference(got, want.Bytes()), c.fix)
		}
	}
}

// firstDifference is the 1-based line where a and b first differ.
func firstDifference(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}
