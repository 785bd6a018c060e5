package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

// Stack is the service as `dealcast-dev dev` assembles it, in this process
// on a fresh database and free loopback ports. Its parts run under pprof
// labels (part=api, dispatcher, worker, temporal-server, temporal-client,
// receiver), so `go tool pprof -tags` splits a profile by component.
type Stack struct {
	log    *slog.Logger
	cfg    config.Config
	pool   *pgxpool.Pool
	store  *store.Store
	tel    *telemetry.Telemetry
	sealer *webhook.Sealer
	// delivery is the Temporal side; restartDelivery replaces it, and
	// dispatch forwards the API's events to its dispatcher.
	delivery *deliveryStack
	dispatch switchable
	server   *http.Server
	served   sync.WaitGroup
	BaseURL  string
	// TemporalStarts counts embedded Temporal servers started.
	TemporalStarts int

	openConns, peakConns atomic.Int64
	// muted silences the service's log once Close begins: requests cut
	// short by the shutdown are expected.
	muted                      *atomic.Bool
	temporalErrors, sqliteBusy atomic.Int64
}

// deliveryStack is an embedded Temporal server with the dispatcher,
// sweeper and worker that use it.
type deliveryStack struct {
	temporal *devtemporal.Server
	dataDir  string
	client   client.Client
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// switchable is the API's Delivery; while delivery is paused there is no
// dispatcher and events stay in the outbox.
type switchable struct {
	d atomic.Pointer[delivery.Dispatcher]
}

func (s *switchable) Dispatch(ctx context.Context, ev store.EventRef) {
	if d := s.d.Load(); d != nil {
		d.Dispatch(ctx, ev)
	}
}

func (s *switchable) Redeliver(ctx context.Context, ev store.EventRef) error {
	if d := s.d.Load(); d != nil {
		return d.Redeliver(ctx, ev)
	}
	return errors.New("bench: delivery is paused")
}

// startStack brings the stack up on a new database dealcast_bench_<random>;
// Close takes it all down and drops the database.
func startStack(ctx context.Context, cfg Config, log *slog.Logger) (_ *Stack, err error) {
	muted := new(atomic.Bool)
	log = slog.New(logfilter.Mutable(log.Handler(), muted))
	s := &Stack{log: log, muted: muted}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dbURL, err := databaseURL(cfg.DatabaseURL, "dealcast_bench_"+randomHex(6), cfg.PoolMaxConns)
	if err != nil {
		return nil, err
	}
	key := make([]byte, webhook.KeySize)
	_, _ = rand.Read(key)
	s.cfg = config.Config{
		DatabaseURL: dbURL, TemporalNamespace: "default", TemporalCompression: config.CompressionNone,
		WebhookAllowPrivate: true, RateLimitRPS: cfg.RateLimitRPS, SecretKey: base64.StdEncoding.EncodeToString(key),
		JWTSecret: randomHex(32), InvoiceTerms: config.DefaultInvoiceTerms,
	}
	if err := database.Ensure(ctx, dbURL); err != nil {
		return nil, fmt.Errorf("create the bench database (is PostgreSQL running?): %w", err)
	}
	if s.pool, err = database.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	if _, err := database.Migrate(ctx, s.pool); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s.store = store.New(s.pool)
	if s.sealer, err = service.NewSealer(s.cfg); err != nil {
		return nil, err
	}
	if s.tel, err = telemetry.Setup(ctx, telemetry.Options{Service: "dealcast-bench"}); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := delivery.RegisterGauges(s.store); err != nil {
		return nil, err
	}
	if err := s.startDelivery(ctx); err != nil {
		return nil, err
	}
	v, err := auth.NewVerifier(ctx, auth.Options{Secret: s.cfg.JWTSecret})
	if err != nil {
		return nil, err
	}
	p := &service.Process{Config: s.cfg, Log: log.With("component", "service"), Telemetry: s.tel, Store: s.store, Sealer: s.sealer}
	deps := p.APIDeps(nil)
	deps.Verifier, deps.Delivery, deps.Ready = v, &s.dispatch, s.ready
	handler, _ := api.New(deps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.BaseURL = "http://" + ln.Addr().String()
	s.server = service.NewHTTPServer(ln.Addr().String(), withHold(handler))
	s.server.ConnState = s.connState
	s.server.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	labelled(&s.served, "api", func() { _ = s.server.Serve(ln) })
	return s, nil
}

func (s *Stack) ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return err
	}
	if s.delivery == nil {
		return errors.New("delivery is paused")
	}
	_, err := s.delivery.client.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// startDelivery starts an embedded Temporal server on a new SQLite file,
// and the dispatcher (eager starts), sweeper and worker on it, as dev does.
func (s *Stack) startDelivery(ctx context.Context) (err error) {
	ds := &deliveryStack{}
	s.delivery = ds
	if ds.dataDir, err = os.MkdirTemp("", "dealcast-bench-temporal-"); err != nil {
		return err
	}
	quiet := slog.New(errorCounter{s: s, next: logfilter.AtLeast(s.log.Handler(), slog.LevelError)})
	pprof.Do(ctx, pprof.Labels("part", "temporal-server"), func(ctx context.Context) {
		ds.temporal, err = devtemporal.Start(ctx, devtemporal.Options{
			DataDir: ds.dataDir, FrontendPort: devtemporal.AnyFreePort, Namespace: s.cfg.TemporalNamespace,
			SearchAttributes: delivery.SearchAttributes, Logger: quiet.With("component", "temporal-server"),
		})
	})
	if err != nil {
		return fmt.Errorf("embedded temporal: %w", err)
	}
	s.TemporalStarts++
	cfg := s.cfg
	cfg.TemporalAddress = ds.temporal.FrontendAddress()
	pprof.Do(ctx, pprof.Labels("part", "temporal-client"), func(context.Context) {
		ds.client, err = service.DialTemporal(cfg, slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelWarn)), false)
	})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ds.cancel = cancel
	log := s.log.With("component", "service")
	d := delivery.NewDispatcher(ds.client, s.store, log, delivery.Options{Eager: true})
	s.dispatch.d.Store(d)
	acts := service.NewActivities(cfg, s.store, s.sealer, s.tel)
	labelled(&ds.wg, "dispatcher", func() { d.Run(runCtx, 8) })
	labelled(&ds.wg, "worker", func() {
		if err := service.RunDelivery(runCtx, ds.client, d, acts, log); err != nil {
			log.Error("bench: delivery worker", "err", err)
		}
	})
	return nil
}

// stop takes the delivery side down and deletes its Temporal state.
func (ds *deliveryStack) stop() {
	if ds.cancel != nil {
		ds.cancel()
	}
	ds.wg.Wait()
	if ds.client != nil {
		ds.client.Close()
	}
	if ds.temporal != nil {
		_ = ds.temporal.Stop()
	}
	_ = os.RemoveAll(ds.dataDir)
}

// pauseDelivery stops the delivery side; the API keeps running and its
// events stay in the outbox.
func (s *Stack) pauseDelivery() {
	s.dispatch.d.Store(nil)
	if s.delivery != nil {
		s.delivery.stop()
		s.delivery = nil
	}
}

// resumeDelivery starts a fresh delivery side without the events written
// meanwhile (marked dispatched, so the sweeper leaves them).
func (s *Stack) resumeDelivery(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `UPDATE events SET dispatched_at = now() WHERE dispatched_at IS NULL`); err != nil {
		return err
	}
	return s.startDelivery(ctx)
}

// restartDelivery throws away a backlog the next scenario must not inherit.
func (s *Stack) restartDelivery(ctx context.Context) error {
	s.pauseDelivery()
	return s.resumeDelivery(ctx)
}

// labelled runs f in a goroutine under the pprof label part; the
// goroutines f starts inherit it.
func labelled(wg *sync.WaitGroup, part string, f func()) {
	wg.Go(func() { pprof.Do(context.Background(), pprof.Labels("part", part), func(context.Context) { f() }) })
}

func (s *Stack) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := s.openConns.Add(1)
		for peak := s.peakConns.Load(); n > peak; peak = s.peakConns.Load() {
			if s.peakConns.CompareAndSwap(peak, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		s.openConns.Add(-1)
	}
}

// withHold adds the bench's own GET /bench/hold?ms=N, answered after N
// milliseconds: holding requests makes the client open many connections.
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
	s.served.Wait()
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
	if s.cfg.DatabaseURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := database.Drop(ctx, s.cfg.DatabaseURL); err != nil {
			s.log.Warn("dropping the bench database failed", "err", err)
		}
		cancel()
	}
}

// token mints a JWT for an account, as `dealcast token` does.
func (s *Stack) token(role store.Role, id string) (string, error) {
	return auth.Mint(s.cfg.JWTSecret, role, id, 6*time.Hour, auth.MintOptions{})
}

// backlog counts the events not yet handed to Temporal and the delivery
// workflows still running.
func (s *Stack) backlog(ctx context.Context) (undispatched, running int64, err error) {
	if err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&undispatched); err != nil {
		return 0, 0, err
	}
	resp, err := s.delivery.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s.cfg.TemporalNamespace, Query: `ExecutionStatus = "Running"`,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count running workflows: %w", err)
	}
	return undispatched, resp.GetCount(), nil
}

// drain waits until the backlog is empty, so one scenario's tail does not
// weigh on the next, and returns how long that took.
func (s *Stack) drain(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		undispatched, running, err := s.backlog(ctx)
		if err != nil || undispatched+running == 0 {
			return time.Since(start), err
		}
		if time.Since(start) > timeout {
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

// errorCounter counts the Temporal server's error records, and those
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
