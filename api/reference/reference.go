// Package reference serves the interactive API reference at /docs: Swagger
// UI, embedded in the binary from a pinned npm release (swagger-ui/PACKAGE),
// reading the service's own /openapi.json. The page loads nothing from
// another host, so it works without internet.
package reference

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html reference.js swagger-ui
var files embed.FS

// Bundle is the npm release the page's assets come from, with its integrity
// as the registry publishes it ("swagger-ui-dist@5.35.0 sha512-…").
var Bundle = strings.TrimSpace(string(must(files.ReadFile("swagger-ui/PACKAGE"))))

// csp lets the page load and call only this origin: a bundle that reached
// for a CDN font or telemetry would be refused by the browser. Swagger UI
// sets inline styles and draws its icons as data: images.
const csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets are the files under /docs/, by name. The bundle's files keep
// their names, so its licence comment's reference resolves.
var assets = func() map[string]asset {
	m := map[string]asset{}
	add := func(name, file string) {
		b := must(files.ReadFile(file))
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "text/plain; charset=utf-8"
		}
		m[name] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	add("reference.js", "reference.js")
	entries := must(fs.ReadDir(files, "swagger-ui"))
	for _, e := range entries {
		if e.Name() != "PACKAGE" && e.Name() != "SHA256SUMS" {
			add(e.Name(), "swagger-ui/"+e.Name())
		}
	}
	return m
}()

var page = must(files.ReadFile("index.html"))

// Register adds GET /docs (the page) and GET /docs/{file} (its assets) to mux.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /docs/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		// Revalidated on each load: the ETag changes with the bundle, and a
		// match costs a 304 instead of 1.7 MB.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
