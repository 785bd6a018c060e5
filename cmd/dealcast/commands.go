package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/store"
)

func newLogger(dev bool) *slog.Logger {
	if dev {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

// runDev is the one-process development stack.
func runDev(ctx context.Context, args []string) error {
	if err := flag.NewFlagSet("dev", flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	log := newLogger(true)
	slog.SetDefault(log)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if os.Getenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE") == "" {
		cfg.WebhookAllowPrivate = true
		log.Warn("dev: webhook URLs may use plain http and private addresses (DEALCAST_WEBHOOK_ALLOW_PRIVATE=true); never in production")
	}
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		secret, err := devSecret(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.JWTSecret = secret
		fmt.Fprintf(os.Stderr, "dev: DEALCAST_JWT_SECRET=%s (kept in %s)\n", secret, secretPath(cfg.DataDir))
	}
	if err := database.Ensure(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := database.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	log.Info("dev: starting", "config", cfg)
	st := store.New(pool)
	errc := make(chan error, 2)
	go func() { errc <- runHousekeeping(ctx, st, log) }()
	go func() { errc <- serveAPI(ctx, cfg, st, log, true) }()
	return firstError(ctx, errc, 2)
}

// runAPI serves the REST API alone.
func runAPI(ctx context.Context, args []string) error {
	if err := flag.NewFlagSet("api", flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	log := newLogger(false)
	slog.SetDefault(log)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if err := cfg.RequireKeys(); err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.Info("api: starting", "config", cfg)
	return serveAPI(ctx, cfg, store.New(pool), log, false)
}

// runWorker runs the background work alone.
func runWorker(ctx context.Context, args []string) error {
	if err := flag.NewFlagSet("worker", flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	log := newLogger(false)
	slog.SetDefault(log)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.Info("worker: starting", "config", cfg)
	return runHousekeeping(ctx, store.New(pool), log)
}

// runHousekeeping deletes expired rows until ctx ends.
func runHousekeeping(ctx context.Context, st *store.Store, log *slog.Logger) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := st.DeleteExpiredIdempotencyKeys(ctx); err != nil {
			log.Warn("housekeeping failed", "err", err)
		} else if n > 0 {
			log.Info("housekeeping: expired idempotency keys deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	create := fs.Bool("create-database", false, "create the database first if it does not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if *create {
		if err := database.Ensure(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	results, err := database.Migrate(ctx, pool)
	for _, r := range results {
		fmt.Printf("applied %s (%s)\n", r.Source.Path, r.Duration.Round(time.Millisecond))
	}
	if err == nil && len(results) == 0 {
		fmt.Println("database is up to date")
	}
	return err
}

func runToken(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	role := fs.String("role", "", "seller, buyer or operator")
	sub := fs.String("sub", "", "account ID (any identifier for an operator)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	secret := cfg.JWTSecret
	if secret == "" {
		// The secret dev made and kept, so a second shell can mint tokens
		// for a running dev stack without copying it around.
		b, err := os.ReadFile(secretPath(cfg.DataDir))
		if err != nil {
			return errors.New("set DEALCAST_JWT_SECRET (or run dealcast dev once to create one)")
		}
		secret = strings.TrimSpace(string(b))
	}
	switch store.Role(*role) {
	case store.RoleSeller, store.RoleBuyer, store.RoleOperator:
	default:
		return fmt.Errorf("--role must be seller, buyer or operator")
	}
	if *sub == "" || *ttl <= 0 {
		return fmt.Errorf("--sub is required and --ttl must be positive")
	}
	tok, err := auth.Mint(secret, store.Role(*role), *sub, *ttl, auth.MintOptions{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func runOpenAPI(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("openapi", flag.ContinueOnError)
	version := fs.String("version", "3.1", "3.1 or 3.0")
	asYAML := fs.Bool("yaml", false, "YAML instead of JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, a := api.New(api.Deps{})
	b, err := specBytes(a.OpenAPI(), *version, *asYAML)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

func specBytes(o *huma.OpenAPI, version string, asYAML bool) ([]byte, error) {
	switch {
	case version == "3.1" && asYAML:
		return o.YAML()
	case version == "3.1":
		return o.MarshalJSON()
	case version == "3.0" && asYAML:
		return o.DowngradeYAML()
	case version == "3.0":
		return o.Downgrade()
	}
	return nil, fmt.Errorf("--version must be 3.1 or 3.0")
}

// serveAPI serves until ctx ends, then drains in-flight requests.
func serveAPI(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger, dev bool) error {
	v, err := auth.NewVerifier(ctx, auth.Options{Secret: cfg.JWTSecret, JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	handler, _ := api.New(api.Deps{Store: st, Verifier: v, Logger: log, Ready: st.Ping})
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	if dev {
		base := "http://localhost" + cfg.HTTPAddr
		if !strings.HasPrefix(cfg.HTTPAddr, ":") {
			base = "http://" + cfg.HTTPAddr
		}
		fmt.Fprintf(os.Stderr, "\n  API      %s/v1\n  Docs     %s/docs\n  OpenAPI  %s/openapi.json\n\n", base, base, base)
	}
	log.Info("api: listening", "addr", cfg.HTTPAddr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("api: shutting down, draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// firstError waits for n goroutines' results and returns the first
// failure; a clean stop after ctx ends is not a failure.
func firstError(ctx context.Context, errc <-chan error, n int) error {
	var first error
	for range n {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
			if ctx.Err() == nil {
				return err
			}
		}
	}
	return first
}

func secretPath(dataDir string) string { return filepath.Join(dataDir, "jwt-secret") }

// devSecret returns the development HS256 secret kept in dataDir, creating it once.
func devSecret(dataDir string) (string, error) {
	p := secretPath(dataDir)
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	return secret, os.WriteFile(p, []byte(secret+"\n"), 0o600)
}
