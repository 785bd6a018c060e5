package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/internal/logfilter"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/service"
)

// Stack is the service as `dealcast dev` assembles it (database, embedded
// Temporal, dispatcher with eager starts, delivery worker and sweeper, API),
// started in this process on a fresh database and free loopback ports.
//
// Its parts run under pprof labels (part=api, worker, dispatcher,
// temporal-server, temporal-client; the load generator is part=loadgen and
// the receivers part=receiver), so `go tool pprof -tags` splits a profile
// of the one process by component.
type Stack struct {
	log       *slog.Logger
	dbURL     string
	pool      *pgxpool.Pool
	store     *store.Store
	tel       *telemetry.Telemetry
	sealer    *webhook.Sealer
	jwtSecret string
	namespace string
	// delivery is the Temporal side; restartDelivery replaces it.
	delivery *deliveryStack
	// dispatch forwards the API's new events to the current dispatcher.
	dispatch switchable
	server   *http.Server
	apiWG    sync.WaitGroup
	// BaseURL is the API's root, http://127.0.0.1:port.
	BaseURL string
	// PoolMaxConns is the pgxpool size the service runs with.
	PoolMaxConns int
	// TemporalStarts counts embedded Temporal servers started.
	TemporalStarts int

	openConns atomic.Int64 // API connections open now
	peakConns atomic.Int64
	// muted silences the service's log once Close begins: requests and
	// workflow starts cut short by the shutdown are expected.
	muted *atomic.Bool
	// temporalErrors counts the embedded Temporal server's error records;
	// sqliteBusy those of them that say its SQLite file was locked.
	temporalErrors, sqliteBusy atomic.Int64
}

// deliveryStack is the embedded Temporal server with the dispatcher, the
// sweeper and the worker that use it.
type deliveryStack struct {
	temporal *devtemporal.Server
	dataDir  string
	client   client.Client
	worker   worker.Worker
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// switchable is the API's Delivery, forwarding to the current dispatcher.
type switchable struct {
	d atomic.Pointer[delivery.Dispatcher]
}

// Dispatch hands ev to the current dispatcher; while delivery is paused
// there is none and the event stays in the outbox.
func (s *switchable) Dispatch(ctx context.Context, ev store.EventRef) {
	if d := s.d.Load(); d != nil {
		d.Dispatch(ctx, ev)
	}
}

func (s *switchable) Redeliver(ctx context.Context, ev store.EventRef) error {
	d := s.d.Load()
	if d == nil {
		return errors.New("bench: delivery is paused")
	}
	return d.Redeliver(ctx, ev)
}

// startStack brings the stack up on a new database dealcast_bench_<random>
// on the server of cfg.DatabaseURL; Close takes it all down and drops it.
func startStack(ctx context.Context, cfg Config, log *slog.Logger) (_ *Stack, err error) {
	muted := new(atomic.Bool)
	log = slog.New(logfilter.Mutable(log.Handler(), muted))
	s := &Stack{log: log, namespace: "default", PoolMaxConns: cfg.PoolMaxConns, muted: muted}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.dbURL, err = databaseURL(cfg.DatabaseURL, "dealcast_bench_"+randomHex(6), cfg.PoolMaxConns)
	if err != nil {
		return nil, err
	}
	if err := database.Ensure(ctx, s.dbURL); err != nil {
		return nil, fmt.Errorf("create the bench database (is PostgreSQL running?): %w", err)
	}
	if s.pool, err = database.Open(ctx, s.dbURL); err != nil {
		return nil, err
	}
	if _, err := database.Migrate(ctx, s.pool); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s.store = store.New(s.pool)
	// Metrics and tracing as the service sets them up (spans are made but
	// exported nowhere unless OTEL_EXPORTER_OTLP_ENDPOINT is set).
	if s.tel, err = telemetry.Setup(ctx, telemetry.Options{Service: "dealcast-bench"}); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := delivery.RegisterGauges(s.store); err != nil {
		return nil, err
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	if s.sealer, err = webhook.NewSealer(key[:]); err != nil {
		return nil, err
	}
	s.jwtSecret = randomHex(32)
	if err := s.startDelivery(ctx); err != nil {
		return nil, err
	}

	v, err := auth.NewVerifier(ctx, auth.Options{Secret: s.jwtSecret})
	if err != nil {
		return nil, err
	}
	handler, _ := api.New(api.Deps{
		Metrics:              s.tel.MetricsHandler(),
		RateLimit:            api.RateLimit{PerSecond: cfg.RateLimitRPS},
		Store:                s.store,
		Verifier:             v,
		Logger:               log.With("component", "service"),
		Delivery:             &s.dispatch,
		Sealer:               s.sealer,
		AllowPrivateWebhooks: true,
		SpanlessRequests:     !s.tel.Exporting(), // as dealcast api and dev
		Ready: func(ctx context.Context) error {
			if err := s.store.Ping(ctx); err != nil {
				return err
			}
			ds := s.delivery
			if ds == nil {
				return errors.New("delivery is paused")
			}
			_, err := ds.client.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.BaseURL = "http://" + ln.Addr().String()
	// The same server settings as serveAPI, plus a connection count.
	s.server = &http.Server{
		Handler:           withHold(handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ConnState:         s.connState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	goLabelled(context.Background(), &s.apiWG, "api", func(context.Context) { _ = s.server.Serve(ln) })
	return s, nil
}

// startDelivery starts an embedded Temporal server on a new SQLite file and
// free ports, and the dispatcher, sweeper and worker on it, as runDev does.
func (s *Stack) startDelivery(ctx context.Context) (err error) {
	ds := &deliveryStack{}
	s.delivery = ds
	if ds.dataDir, err = os.MkdirTemp("", "dealcast-bench-temporal-"); err != nil {
		return err
	}
	quiet := slog.New(errorCounter{s: s, next: logfilter.AtLeast(s.log.Handler(), slog.LevelError)})
	pprof.Do(ctx, pprof.Labels("part", "temporal-server"), func(ctx context.Context) {
		ds.temporal, err = devtemporal.Start(ctx, devtemporal.Options{
			DataDir:          ds.dataDir,
			FrontendPort:     devtemporal.AnyFreePort,
			UIPort:           0, // no Web UI
			Namespace:        s.namespace,
			SearchAttributes: delivery.SearchAttributes,
			Logger:           quiet.With("component", "temporal-server"),
		})
	})
	if err != nil {
		return fmt.Errorf("embedded temporal: %w", err)
	}
	s.TemporalStarts++
	// As dialTemporal: tracing interceptor and SDK metrics.
	tracing, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return err
	}
	sdkLog := slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelWarn)).With("component", "temporal-sdk")
	pprof.Do(ctx, pprof.Labels("part", "temporal-client"), func(context.Context) {
		ds.client, err = client.Dial(client.Options{
			HostPort:  ds.temporal.FrontendAddress(),
			Namespace: s.namespace,
			// As dev with its embedded server, which is on loopback.
			ConnectionOptions: client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}},
			Logger:            sdklog.NewStructuredLogger(sdkLog),
			Interceptors:      []interceptor.ClientInterceptor{tracing},
			MetricsHandler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
				OnError: func(err error) { sdkLog.Warn("temporal sdk metric", "err", err) },
			}),
		})
	})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ds.cancel = cancel
	svcLog := s.log.With("component", "service")
	// As runDev: the worker runs here with the same client, so starts are eager.
	d := delivery.NewDispatcher(ds.client, s.store, svcLog, delivery.Options{Eager: true})
	s.dispatch.d.Store(d)
	goLabelled(runCtx, &ds.wg, "dispatcher", func(ctx context.Context) { d.Run(ctx, 8) })
	acts := service.NewActivities(config.Config{WebhookAllowPrivate: true}, s.store, s.sealer, s.tel)
	pprof.Do(ctx, pprof.Labels("part", "worker"), func(context.Context) {
		ds.worker = service.NewWorker(ds.client, delivery.TaskQueue, acts)
		err = ds.worker.Start()
	})
	if err != nil {
		ds.worker = nil
		return fmt.Errorf("start worker: %w", err)
	}
	goLabelled(runCtx, &ds.wg, "dispatcher", func(ctx context.Context) { d.Sweep(ctx, 2*time.Second, 3*time.Second) })
	return nil
}

// stop takes the delivery side down and deletes its Temporal state.
func (ds *deliveryStack) stop() {
	if ds.cancel != nil {
		ds.cancel()
	}
	ds.wg.Wait()
	if ds.worker != nil {
		ds.worker.Stop()
	}
	if ds.client != nil {
		ds.client.Close()
	}
	if ds.temporal != nil {
		_ = ds.temporal.Stop()
	}
	if ds.dataDir != "" {
		_ = os.RemoveAll(ds.dataDir)
	}
}

// restartDelivery throws away a delivery backlog the next scenario must
// not inherit: it stops the delivery side, marks every undispatched event
// dispatched (so the sweeper does not start it again) and starts a fresh
// Temporal server, dispatcher and worker. The API keeps running.
func (s *Stack) restartDelivery(ctx context.Context) error {
	s.pauseDelivery()
	return s.resumeDelivery(ctx)
}

// pauseDelivery stops the delivery side (Temporal server, dispatcher,
// sweeper, worker) and its state; the API keeps running and its events
// stay in the outbox.
func (s *Stack) pauseDelivery() {
	s.dispatch.d.Store(nil)
	if s.delivery != nil {
		s.delivery.stop()
		s.delivery = nil
	}
}

// resumeDelivery starts a fresh delivery side without the events written
// while it was paused.
func (s *Stack) resumeDelivery(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `UPDATE events SET dispatched_at = now() WHERE dispatched_at IS NULL`); err != nil {
		return err
	}
	return s.startDelivery(ctx)
}

// goLabelled runs f in a goroutine under the pprof label part=part; the
// goroutines f starts inherit the label.
func goLabelled(ctx context.Context, wg *sync.WaitGroup, part string, f func(context.Context)) {
	wg.Add(1)
	go pprof.Do(ctx, pprof.Labels("part", part), func(ctx context.Context) {
		defer wg.Done()
		f(ctx)
	})
}

func (s *Stack) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := s.openConns.Add(1)
		for {
			peak := s.peakConns.Load()
			if n <= peak || s.peakConns.CompareAndSwap(peak, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		s.openConns.Add(-1)
	}
}

// withHold adds GET /bench/hold?ms=N, which answers after N milliseconds:
// the load generator uses it to open many connections at once. It is the
// bench's own route, outside the API.
func withHold(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("GET /bench/hold", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(min(max(ms, 0), 10_000)) * time.Millisecond):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// Close stops everything and drops the database.
func (s *Stack) Close() {
	s.muted.Store(true)
	if s.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.server.Shutdown(ctx)
		cancel()
	}
	s.apiWG.Wait()
	if s.delivery != nil {
		s.delivery.stop()
	}
	if s.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.tel.Shutdown(ctx)
		cancel()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.dbURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := database.Drop(ctx, s.dbURL); err != nil {
			s.log.Warn("dropping the bench database failed", "err", err)
		}
		cancel()
	}
}

// token mints a JWT for an account, as `dealcast token` does.
func (s *Stack) token(role store.Role, id string) (string, error) {
	return auth.Mint(s.jwtSecret, role, id, 6*time.Hour, auth.MintOptions{})
}

// backlog counts the events not yet handed to Temporal and the delivery
// workflows still running.
func (s *Stack) backlog(ctx context.Context) (undispatched, running int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&undispatched)
	if err != nil {
		return 0, 0, err
	}
	resp, err := s.delivery.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s.namespace, Query: `ExecutionStatus = "Running"`,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count running workflows: %w", err)
	}
	return undispatched, resp.GetCount(), nil
}

// drain waits until every event has been handed to Temporal and no
// delivery workflow is running, so one scenario's tail does not weigh on
// the next. It returns how long that took.
func (s *Stack) drain(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		undispatched, running, err := s.backlog(ctx)
		if err != nil {
			return time.Since(start), err
		}
		if undispatched == 0 && running == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), &BacklogError{Undispatched: undispatched, Running: running, After: timeout}
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// BacklogError is a drain that timed out.
type BacklogError struct {
	Undispatched, Running int64
	After                 time.Duration
}

func (e *BacklogError) Error() string {
	return fmt.Sprintf("%d events not yet handed to Temporal and %d delivery workflows still running after %v",
		e.Undispatched, e.Running, e.After)
}

// serverVersion is PostgreSQL's version, as server_version shows it.
func (s *Stack) serverVersion(ctx context.Context) string {
	var v string
	_ = s.pool.QueryRow(ctx, `SHOW server_version`).Scan(&v)
	return v
}

// databaseURL is base with its database replaced by name and the pool size set.
func databaseURL(base, name string, poolMaxConns int) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", errors.New("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	q := u.Query()
	if poolMaxConns > 0 {
		q.Set("pool_max_conns", strconv.Itoa(poolMaxConns))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errorCounter counts the error records of the Temporal server, and those
// about a locked SQLite database, before passing them on.
type errorCounter struct {
	s    *Stack
	next slog.Handler
}

func (h errorCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h errorCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.s.temporalErrors.Add(1)
		locked := strings.Contains(r.Message, "database is locked")
		r.Attrs(func(a slog.Attr) bool {
			locked = locked || strings.Contains(a.Value.String(), "database is locked")
			return !locked
		})
		if locked {
			h.s.sqliteBusy.Add(1)
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h errorCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorCounter{s: h.s, next: h.next.WithAttrs(attrs)}
}

func (h errorCounter) WithGroup(name string) slog.Handler {
	return errorCounter{s: h.s, next: h.next.WithGroup(name)}
}
