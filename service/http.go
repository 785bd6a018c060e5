package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
)

// ServeAPI serves the REST API until ctx ends, then drains in-flight
// requests for up to cfg.ShutdownTimeout. banner goes to stderr once the
// server listens.
func ServeAPI(ctx context.Context, cfg config.Config, deps api.Deps, log *slog.Logger, banner string) error {
	v, err := auth.NewVerifier(ctx, auth.Options{Secret: cfg.JWTSecret, JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	deps.Verifier = v
	handler, _ := api.New(deps)
	log.Info("api: listening", "addr", cfg.HTTPAddr)
	return serve(ctx, NewHTTPServer(cfg.HTTPAddr, handler), cfg.ShutdownTimeout, func() {
		fmt.Fprint(os.Stderr, banner)
	}, log)
}

// ServeOps serves a worker's /healthz, /readyz and /metrics until ctx ends.
func ServeOps(ctx context.Context, addr string, metrics http.Handler, readyz func(context.Context) error, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := readyz(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	log.Info("worker: health and metrics", "addr", addr)
	return serve(ctx, NewHTTPServer(addr, mux), 5*time.Second, func() {}, log)
}

// NewHTTPServer is the server both listeners use: every phase of a
// request has a deadline, so slow or stalled clients cannot hold
// connections (and goroutines) for long.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// serve runs srv until ctx ends, then shuts it down gracefully within
// drain. listening runs once the listener is bound.
func serve(ctx context.Context, srv *http.Server, drain time.Duration, listening func(), log *slog.Logger) error {
	ln, err := listen(srv.Addr)
	if err != nil {
		return err
	}
	listening()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return ignoreClosed(err)
	case <-ctx.Done():
	}
	log.Info("shutting down, draining requests", "addr", srv.Addr)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return ignoreClosed(srv.Shutdown(shutdownCtx))
}

func listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = ":http"
	}
	return net.Listen("tcp", addr)
}
