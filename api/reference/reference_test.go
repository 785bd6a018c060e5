package reference

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The embedded bundle is the one SHA256SUMS records: a hand edit, or a
// refresh that failed half way, shows here.
func TestBundleMatchesSums(t *testing.T) {
	f, err := files.Open("swagger-ui/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := files.ReadFile("swagger-ui/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("SHA256SUMS lists no file")
	}
	if !strings.HasPrefix(Bundle, "swagger-ui-dist@") || !strings.Contains(Bundle, " sha512-") {
		t.Errorf("PACKAGE is %q", Bundle)
	}
}

func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux)
	for _, c := range []struct {
		path, ctype string
		status      int
	}{
		{"/docs", "text/html; charset=utf-8", 200},
		{"/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8", 200},
		{"/docs/swagger-ui.css", "text/css; charset=utf-8", 200},
		{"/docs/reference.js", "text/javascript; charset=utf-8", 200},
		{"/docs/LICENSE", "text/plain; charset=utf-8", 200},
		{"/docs/PACKAGE", "", 404},
		{"/docs/index.html", "", 404},
		{"/docs/", "", 404},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, rec.Code, c.status)
			continue
		}
		if c.status == 200 && rec.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, rec.Header().Get("Content-Type"), c.ctype)
		}
	}

	// A browser that has the bundle revalidates it for nothing.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs/swagger-ui-bundle.js", nil))
	req := httptest.NewRequest(http.MethodGet, "/docs/swagger-ui-bundle.js", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("GET with the ETag: %d, want 304", rec.Code)
	}
}
