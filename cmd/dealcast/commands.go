package main

import (
	"context"
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
	"go.temporal.io/sdk/client"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhook"
)

func newLogger(dev bool) *slog.Logger {
	if dev {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

// runDev is the one-process development stack: database, embedded
// Temporal with its UI (unless TEMPORAL_ADDRESS is set), worker and API.
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
	tel, stopTelemetry, err := startTelemetry(ctx, "dealcast")
	if err != nil {
		return err
	}
	defer stopTelemetry()
	if os.Getenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE") == "" {
		cfg.WebhookAllowPrivate = true
		log.Warn("dev: webhook URLs may use plain http and private addresses (DEALCAST_WEBHOOK_ALLOW_PRIVATE=true); never in production")
	}
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		if cfg.JWTSecret, err = devFile(cfg.DataDir, "jwt-secret", randomKey); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "dev: DEALCAST_JWT_SECRET=%s (kept in %s)\n", cfg.JWTSecret, secretPath(cfg.DataDir))
	}
	if cfg.SecretKey == "" {
		if cfg.SecretKey, err = devFile(cfg.DataDir, "secret-key", randomKey); err != nil {
			return err
		}
	}
	sl, err := sealer(cfg)
	if err != nil {
		return err
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
	uiURL := ""
	if cfg.TemporalAddress == "" {
		log.Info("dev: starting the embedded Temporal server", "data_dir", cfg.DataDir)
		srv, err := devtemporal.Start(ctx, devtemporal.Options{
			DataDir:          cfg.DataDir,
			FrontendPort:     devtemporal.DefaultFrontendPort,
			UIPort:           devtemporal.DefaultUIPort,
			Namespace:        cfg.TemporalNamespace,
			SearchAttributes: delivery.SearchAttributes,
			Logger:           log.With("component", "temporal-server"),
		})
		if err != nil {
			return fmt.Errorf("embedded temporal: %w", err)
		}
		defer func() { _ = srv.Stop() }()
		cfg.TemporalAddress = srv.FrontendAddress()
		uiURL = srv.UIURL()
		if cfg.TemporalCompression == "" {
			// The embedded server is on loopback: compressing every call
			// would only cost CPU on both sides (1.4–2.3 % of the process
			// in the webhook_throughput benchmark).
			cfg.TemporalCompression = config.CompressionNone
		}
	}
	c, err := dialTemporal(cfg, log, false)
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer c.Close()
	if err := delivery.RegisterSearchAttributes(ctx, c, cfg.TemporalNamespace); err != nil {
		log.Warn("dev: search attributes not registered", "err", err)
	}
	log.Info("dev: starting", "config", cfg)
	st := store.New(pool)
	if err := delivery.RegisterGauges(st); err != nil {
		return err
	}
	// The worker runs here with the same client, so workflow starts can be eager.
	d := delivery.NewDispatcher(c, st, log, delivery.Options{Eager: true})
	errc := make(chan error, 4)
	go func() { d.Run(ctx, 8); errc <- nil }()
	go func() { errc <- runDelivery(ctx, c, d, newActivities(cfg, st, sl, tel), log) }()
	go func() { errc <- runHousekeeping(ctx, st, log) }()
	go func() {
		errc <- serveAPI(ctx, cfg, apiDeps(cfg, st, c, d, sl, tel, log), log, devBanner(cfg, uiURL))
	}()
	return firstError(ctx, errc, 4)
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
	tel, stopTelemetry, err := startTelemetry(ctx, "dealcast-api")
	if err != nil {
		return err
	}
	defer stopTelemetry()
	if err := cfg.RequireKeys(); err != nil {
		return err
	}
	sl, err := sealer(cfg)
	if err != nil {
		return err
	}
	if cfg.TemporalAddress == "" {
		return errors.New("set TEMPORAL_ADDRESS (host:port of the Temporal frontend)")
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := dialTemporal(cfg, log, true)
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer c.Close()
	log.Info("api: starting", "config", cfg)
	st := store.New(pool)
	d := delivery.NewDispatcher(c, st, log, delivery.Options{})
	errc := make(chan error, 2)
	go func() { d.Run(ctx, 8); errc <- nil }()
	go func() { errc <- serveAPI(ctx, cfg, apiDeps(cfg, st, c, d, sl, tel, log), log, "") }()
	return firstError(ctx, errc, 2)
}

// runWorker runs webhook delivery, the outbox sweeper and housekeeping.
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
	tel, stopTelemetry, err := startTelemetry(ctx, "dealcast-worker")
	if err != nil {
		return err
	}
	defer stopTelemetry()
	sl, err := sealer(cfg)
	if err != nil {
		return err
	}
	if cfg.TemporalAddress == "" {
		return errors.New("set TEMPORAL_ADDRESS (host:port of the Temporal frontend)")
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := dialTemporal(cfg, log, false)
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer c.Close()
	// Delivery workflows carry the DealId and EventType search attributes;
	// a namespace without them refuses the starts. Where the operator API
	// is not open to workers (Temporal Cloud), register them beforehand.
	if err := delivery.RegisterSearchAttributes(ctx, c, cfg.TemporalNamespace); err != nil {
		log.Warn("worker: could not register search attributes; register DealId and EventType (Keyword) on the namespace", "err", err)
	}
	log.Info("worker: starting", "config", cfg)
	st := store.New(pool)
	if err := delivery.RegisterGauges(st); err != nil {
		return err
	}
	d := delivery.NewDispatcher(c, st, log, delivery.Options{})
	errc := make(chan error, 3)
	go func() { errc <- runDelivery(ctx, c, d, newActivities(cfg, st, sl, tel), log) }()
	go func() { errc <- runHousekeeping(ctx, st, log) }()
	go func() {
		errc <- serveOps(ctx, cfg, tel, func(ctx context.Context) error { return ready(ctx, st, c) }, log)
	}()
	return firstError(ctx, errc, 3)
}

// apiDeps assembles what the API needs; readiness covers the database and Temporal.
func apiDeps(cfg config.Config, st *store.Store, c client.Client, d *delivery.Dispatcher, sl *webhook.Sealer, tel *telemetry.Telemetry, log *slog.Logger) api.Deps {
	return api.Deps{
		Metrics:              tel.MetricsHandler(),
		Store:                st,
		Logger:               log,
		Delivery:             d,
		Sealer:               sl,
		AllowPrivateWebhooks: cfg.WebhookAllowPrivate,
		RateLimit:            api.RateLimit{PerSecond: cfg.RateLimitRPS},
		Ready:                func(ctx context.Context) error { return ready(ctx, st, c) },
		SpanlessRequests:     !tel.Exporting(),
	}
}

// ready checks that the database and Temporal answer.
func ready(ctx context.Context, st *store.Store, c client.Client) error {
	if err := st.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

// serveOps serves the worker's /healthz, /readyz and /metrics until ctx ends.
func serveOps(ctx context.Context, cfg config.Config, tel *telemetry.Telemetry, readyz func(context.Context) error, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := readyz(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("worker: health and metrics", "addr", cfg.HTTPAddr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}

// devBanner is what dev prints once the API listens.
func devBanner(cfg config.Config, uiURL string) string {
	base := "http://localhost" + cfg.HTTPAddr
	if !strings.HasPrefix(cfg.HTTPAddr, ":") {
		base = "http://" + cfg.HTTPAddr
	}
	b := fmt.Sprintf("\n  API          %s/v1\n  Docs         %s/docs\n  OpenAPI      %s/openapi.json\n", base, base, base)
	if uiURL != "" {
		b += fmt.Sprintf("  Temporal UI  %s/namespaces/%s/workflows\n", uiURL, cfg.TemporalNamespace)
	}
	return b + "\n"
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
	secret, err := devTokenSecret(cfg)
	if err != nil {
		return err
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
func serveAPI(ctx context.Context, cfg config.Config, deps api.Deps, log *slog.Logger, banner string) error {
	v, err := auth.NewVerifier(ctx, auth.Options{Secret: cfg.JWTSecret, JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	deps.Verifier = v
	handler, _ := api.New(deps)
	srv := newHTTPServer(cfg.HTTPAddr, handler)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprint(os.Stderr, banner)
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

// newHTTPServer is the API's server: every phase of a request has a
// deadline, so slow or stalled clients cannot hold connections (and
// goroutines) for long.
func newHTTPServer(addr string, h http.Handler) *http.Server {
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
