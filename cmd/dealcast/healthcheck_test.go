package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
