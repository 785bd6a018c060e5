package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/dealcast/dealcast/internal/dbtest"
)

func TestHealthcheckURL(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			http.Error(w, "not ready: database: down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	defer srv.Close()

	var out bytes.Buffer
	if err := runHealthcheck(t.Context(), []string{"--url", srv.URL + "/readyz"}, &out); err != nil {
		t.Fatalf("ready service: %v", err)
	}
	if !strings.Contains(out.String(), "200") {
		t.Errorf("output %q does not name the status", out.String())
	}

	ready = false
	err := runHealthcheck(t.Context(), []string{"--url", srv.URL + "/readyz"}, &out)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "database: down") {
		t.Errorf("unready service: err = %v, want the 503 and its reason", err)
	}
	if err := runHealthcheck(t.Context(), []string{"--url", srv.URL + "/nothing"}, &out); err == nil {
		t.Error("404 counted as healthy")
	}
	srv.Close()
	if err := runHealthcheck(t.Context(), []string{"--url", srv.URL + "/readyz", "--timeout", "2s"}, &out); err == nil {
		t.Error("a closed port counted as healthy")
	}
}

// TestHealthcheckDeps covers the failures of the worker's probe; its success
// needs a Temporal server and is exercised by the compose stack.
func TestHealthcheckDeps(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE", "")
	var out bytes.Buffer
	if err := runHealthcheck(t.Context(), []string{"--deps"}, &out); err == nil || !strings.Contains(err.Error(), "TEMPORAL_ADDRESS") {
		t.Errorf("no TEMPORAL_ADDRESS: err = %v", err)
	}
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://root@127.0.0.1:1/dealcast?sslmode=disable&connect_timeout=1")
	if err := runHealthcheck(t.Context(), []string{"--deps", "--timeout", "3s"}, &out); err == nil || !strings.Contains(err.Error(), "database") {
		t.Errorf("database down: err = %v", err)
	}
	db := os.Getenv("TEST_DATABASE_URL")
	if db == "" {
		db = dbtest.DefaultURL
	}
	t.Setenv("DATABASE_URL", db)
	if err := runHealthcheck(t.Context(), []string{"--deps", "--timeout", "3s"}, &out); err == nil || !strings.Contains(err.Error(), "temporal") {
		t.Errorf("temporal down: err = %v", err)
	}
}
