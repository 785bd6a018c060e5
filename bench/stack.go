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
	"github.com/dealcast/dealcast/service"
)

// Stack is the service as `dealcast-dev dev` assembles it, in this process
// on a fresh database and free loopback ports. Its parts run under pprof
// labels (part=api, delivery, temporal-server, receiver), so
// `go tool pprof -tags` splits a profile by component.
type Stack struct {
	log     *slog.Logger
	muted   *atomic.Bool // silences the service once Close begins
	cfg     config.Config
	pool    *pgxpool.Pool
	store   *store.Store
	proc    *service.Process // telemetry and sealer; its API deps
	server  *http.Server
	served  sync.WaitGroup
	BaseURL string

	// delivery is the Temporal side; restartDelivery replaces it, and
	// dispatch forwards the API's events to its dispatcher (none while
	// delivery is stopped: events stay in the outbox).
	delivery       *deliveryStack
	dispatch       atomic.Pointer[delivery.Dispatcher]
	temporalStarts int

	openConns, peakConns atomic.Int64
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

// Dispatch and Redeliver make the Stack the API's Delivery.
func (s *Stack) Dispatch(ctx context.Context, ev store.EventRef) {
	if d := s.dispatch.Load(); d != nil {
		d.Dispatch(ctx, ev)
	}
}

func (s *Stack) Redeliver(ctx context.Context, ev store.EventRef) error {
	if d := s.dispatch.Load(); d != nil {
		return d.Redeliver(ctx, ev)
	}
	return errors.New("bench: delivery is stopped")
}

// startStack brings the stack up on a new database dealcast_bench_<random>;
// Close takes it all down and drops the database.
func startStack(ctx context.Context, cfg Config, log *slog.Logger) (_ *Stack, err error) {
	muted := new(atomic.Bool)
	s := &Stack{log: slog.New(logfilter.Mutable(log.Handler(), muted)), muted: muted}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dbURL, err := databaseURL(cfg.DatabaseURL, "dealcast_bench_"+randomHex(6), cfg.PoolMaxConns)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.cfg = config.Config{
		DatabaseURL: dbURL, TemporalNamespace: "default", TemporalCompression: config.CompressionNone,
		WebhookAllowPrivate: true, RateLimitRPS: cfg.RateLimitRPS, SecretKey: base64.StdEncoding.EncodeToString(key),
		JWTSecret: randomHex(32), InvoiceTerms: config.DefaultInvoiceTerms,
	}
	if _, err := database.Prepare(ctx, dbURL, true); err != nil {
		return nil, fmt.Errorf("the bench database (is PostgreSQL running?): %w", err)
	}
	if s.pool, err = database.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	s.store = store.New(s.pool)
	s.proc = &service.Process{Config: s.cfg, Log: s.log.With("component", "service"), Store: s.store}
	if s.proc.Sealer, err = service.NewSealer(s.cfg); err != nil {
		return nil, err
	}
	if s.proc.Telemetry, err = telemetry.Setup(ctx, telemetry.Options{Service: "dealcast-bench"}); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := delivery.RegisterGauges(s.store); err != nil {
		return nil, err
	}
	if err := s.startDelivery(ctx); err != nil {
		return nil, err
	}
	deps := s.proc.APIDeps(nil)
	if deps.Verifier, err = auth.NewVerifier(ctx, auth.Options{Secret: s.cfg.JWTSecret}); err != nil {
		return nil, err
	}
	deps.Delivery, deps.Ready = s, s.store.Ping
	handler, _ := api.New(deps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.BaseURL = "http://" + ln.Addr().String()
	s.server = service.NewHTTPServer(ln.Addr().String(), withHold(handler))
	s.server.ConnState = s.connState
	s.server.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	labelled(&s.served, "api", func() { _ = s.server.Serve(ln) })
	return s, nil
}

// startDelivery starts an embedded Temporal server on a new SQLite file,
// and the dispatcher (eager starts), sweeper and worker on it, as dev does.
func (s *Stack) startDelivery(ctx context.Context) (err error) {
	ds := &deliveryStack{}
	s.delivery = ds
	if ds.dataDir, err = os.MkdirTemp("", "dealcast-bench-temporal-"); err != nil {
		return err
	}
	pprof.Do(ctx, pprof.Labels("part", "temporal-server"), func(ctx context.Context) {
		ds.temporal, err = devtemporal.Start(ctx, devtemporal.Options{
			DataDir: ds.dataDir, FrontendPort: devtemporal.AnyFreePort, Namespace: s.cfg.TemporalNamespace,
			SearchAttributes: delivery.SearchAttributes, Logger: slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelError)),
		})
	})
	if err != nil {
		return fmt.Errorf("embedded temporal: %w", err)
	}
	s.temporalStarts++
	cfg := s.cfg
	cfg.TemporalAddress = ds.temporal.FrontendAddress()
	if ds.client, err = service.DialTemporal(cfg, slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelWarn)), false); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ds.cancel = cancel
	d := delivery.NewDispatcher(ds.client, s.store, s.proc.Log, delivery.Options{Eager: true})
	s.dispatch.Store(d)
	acts := service.NewActivities(cfg, s.store, s.proc.Sealer, s.proc.Telemetry)
	acts.Delivery = d
	labelled(&ds.wg, "delivery", func() { d.Run(runCtx, 8) })
	labelled(&ds.wg, "delivery", func() {
		if err := service.RunDelivery(runCtx, ds.client, d, acts, s.proc.Log); err != nil {
			s.log.Error("bench: delivery worker", "err", err)
		}
	})
	return nil
}

// stopDelivery takes the delivery side down and deletes its Temporal
// state; the API keeps running and its events stay in the outbox.
func (s *Stack) stopDelivery() {
	s.dispatch.Store(nil)
	if ds := s.delivery; ds != nil {
		ds.cancel()
		ds.wg.Wait()
		ds.client.Close()
		_ = ds.temporal.Stop()
		_ = os.RemoveAll(ds.dataDir)
		s.delivery = nil
	}
}

// restartDelivery starts a fresh delivery side without the events written
// meanwhile (marked dispatched, so the sweeper leaves them).
func (s *Stack) restartDelivery(ctx context.Context) error {
	s.stopDelivery()
	if _, err := s.pool.Exec(ctx, `UPDATE events SET dispatched_at = now() WHERE dispatched_at IS NULL`); err != nil {
		return err
	}
	return s.startDelivery(ctx)
}

// labelled runs f in a goroutine under the pprof label part.
func labelled(wg *sync.WaitGroup, part string, f func()) {
	wg.Go(func() { pprof.Do(context.Background(), pprof.Labels("part", part), func(context.Context) { f() }) })
}

func (s *Stack) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := s.openConns.Add(1)
		for peak := s.peakConns.Load(); n > peak && !s.peakConns.CompareAndSwap(peak, n); peak = s.peakConns.Load() {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.server != nil {
		_ = s.server.Shutdown(ctx)
	}
	s.served.Wait()
	s.stopDelivery()
	if s.proc != nil && s.proc.Telemetry != nil {
		_ = s.proc.Telemetry.Shutdown(ctx)
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.cfg.DatabaseURL != "" {
		if err := database.Drop(ctx, s.cfg.DatabaseURL); err != nil {
			s.log.Warn("dropping the bench database failed", "err", err)
		}
	}
}

// token mints a JWT for an account, as `dealcast token` does.
func (s *Stack) token(role store.Role, id string) (string, error) {
	return auth.Mint(s.cfg.JWTSecret, role, id, 6*time.Hour, auth.MintOptions{})
}

// backlog counts the events not yet handed to Temporal and the delivery
// workflows still running (auction and invoice workflows wait for their
// deadlines, and are not a backlog).
func (s *Stack) backlog(ctx context.Context) (undispatched, running int64, err error) {
	if err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&undispatched); err != nil {
		return 0, 0, err
	}
	resp, err := s.delivery.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s.cfg.TemporalNamespace, Query: fmt.Sprintf(`ExecutionStatus = "Running" AND WorkflowType = %q`, delivery.WorkflowType),
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
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL (%v)", err)
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
