// Package service assembles Dealcast's processes from its parts: which
// workflows and activities a worker registers, which dispatcher the API
// hands events to, and how the parts of one process stop together. The
// product binary, the development tools and the end-to-end tests all build
// their processes here.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhook"
)

// Roles say what one process runs.
type Roles struct {
	// API serves the REST API and starts deliveries right after commit.
	API bool
	// Worker runs delivery workflows and activities, the outbox sweeper
	// and housekeeping. A worker without the API serves /healthz, /readyz
	// and /metrics on the HTTP address.
	Worker bool
}

// Process is one running Dealcast process: its settings and the
// connections its roles share.
type Process struct {
	Roles
	Config    config.Config
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	Store     *store.Store
	Temporal  client.Client
	Sealer    *webhook.Sealer
	// Banner is printed once the API listens.
	Banner string

	closers []func()
}

// Open connects what the roles need: telemetry (named name), the
// database, Temporal, and the webhook secret sealer. An API-only process
// dials Temporal lazily, so it starts and takes writes while Temporal is
// down: events wait in the outbox for the sweeper.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, name string, roles Roles) (_ *Process, err error) {
	p := &Process{Roles: roles, Config: cfg, Log: log}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if cfg.TemporalAddress == "" {
		return nil, errors.New("set TEMPORAL_ADDRESS (host:port of the Temporal frontend)")
	}
	if p.Sealer, err = NewSealer(cfg); err != nil {
		return nil, err
	}
	if p.Telemetry, err = telemetry.Setup(ctx, telemetry.Options{Service: name}); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	tel := p.Telemetry
	p.closers = append(p.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, pool.Close)
	p.Store = store.New(pool)
	if p.Temporal, err = DialTemporal(cfg, log, !roles.Worker); err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	p.closers = append(p.closers, p.Temporal.Close)
	if roles.Worker {
		// Delivery workflows carry the DealId and EventType search
		// attributes; a namespace without them refuses the starts. Where
		// the operator API is not open to workers (Temporal Cloud),
		// register them beforehand.
		if err := delivery.RegisterSearchAttributes(ctx, p.Temporal, cfg.TemporalNamespace); err != nil {
			log.Warn("could not register search attributes; register DealId and EventType (Keyword) on the namespace", "err", err)
		}
		if err := delivery.RegisterGauges(p.Store); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Close releases what Open connected, in reverse order.
func (p *Process) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// Run runs the roles until ctx ends or one of them fails, which stops the
// others.
func (p *Process) Run(ctx context.Context) error {
	log := p.Log
	log.Info("starting", "config", p.Config, "api", p.API, "worker", p.Worker)
	// Where the worker runs in the same process with the same client,
	// workflow starts can be eager: the first task goes straight to it.
	d := delivery.NewDispatcher(p.Temporal, p.Store, log, delivery.Options{Eager: p.API && p.Worker})
	g, ctx := errgroup.WithContext(ctx)
	// The API's writes and the worker's activities queue their events on
	// d; its starters batch them.
	g.Go(func() error { d.Run(ctx, delivery.Starters); return nil })
	if p.API {
		g.Go(func() error { return ServeAPI(ctx, p.Config, p.APIDeps(d), log, p.Banner) })
	}
	if p.Worker {
		acts := NewActivities(p.Config, p.Store, p.Sealer, p.Telemetry)
		// Events written by activities (an auction's close, invoice.overdue)
		// start their delivery at once instead of waiting for the sweeper.
		acts.Delivery = d
		g.Go(func() error { return RunDelivery(ctx, p.Temporal, d, acts, log) })
		g.Go(func() error { Housekeep(ctx, p.Store, log); return nil })
		if !p.API {
			g.Go(func() error { return ServeOps(ctx, p.Config.HTTPAddr, p.Telemetry.MetricsHandler(), p.ready, log) })
		}
	}
	return g.Wait()
}

// APIDeps assembles what the API needs, handing new events to d.
func (p *Process) APIDeps(d *delivery.Dispatcher) api.Deps {
	return api.Deps{
		Metrics:              p.Telemetry.MetricsHandler(),
		Store:                p.Store,
		Logger:               p.Log,
		Delivery:             d,
		Sealer:               p.Sealer,
		AllowPrivateWebhooks: p.Config.WebhookAllowPrivate,
		RateLimit:            api.RateLimit{PerSecond: p.Config.RateLimitRPS},
		Ready:                p.ready,
		SpanlessRequests:     !p.Telemetry.Exporting(),
		InvoiceTerms:         p.Config.InvoiceTerms,
	}
}

// ready checks that the database and Temporal answer.
func (p *Process) ready(ctx context.Context) error {
	if err := p.Store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if _, err := p.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

// NewSealer builds the webhook secret sealer from DEALCAST_SECRET_KEY.
func NewSealer(cfg config.Config) (*webhook.Sealer, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("set DEALCAST_SECRET_KEY (base64 of 32 random bytes) to encrypt webhook secrets")
	}
	key, err := webhook.ParseKey(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("DEALCAST_SECRET_KEY: %w", err)
	}
	return webhook.NewSealer(key)
}

// NewActivities builds the delivery activities.
func NewActivities(cfg config.Config, st *store.Store, s *webhook.Sealer, tel *telemetry.Telemetry) *activities.Activities {
	return &activities.Activities{
		Store:            st,
		Sender:           webhook.NewSender(webhook.ClientOptions{AllowPrivate: cfg.WebhookAllowPrivate}),
		Sealer:           s,
		Concurrency:      64,
		SpanlessAttempts: !tel.Exporting(),
		InvoiceTerms:     cfg.InvoiceTerms,
	}
}

// RunDelivery runs the delivery worker and the outbox sweeper until ctx ends.
func RunDelivery(ctx context.Context, c client.Client, d *delivery.Dispatcher, acts *activities.Activities, log *slog.Logger) error {
	w := NewWorker(c, delivery.TaskQueue, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.Info("worker: delivering webhooks")
	d.Sweep(ctx, 2*time.Second, 3*time.Second)
	// Stop waits for running activities (up to the worker's stop timeout),
	// so a shutdown does not cut a delivery round in half.
	w.Stop()
	return nil
}

// Housekeep deletes expired rows every ten minutes until ctx ends.
func Housekeep(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := st.DeleteExpiredIdempotencyKeys(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("housekeeping failed", "err", err)
			}
		} else if n > 0 {
			log.Info("housekeeping: expired idempotency keys deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ignoreClosed treats a server closed by shutdown as a clean stop.
func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
