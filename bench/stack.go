package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/internal/logfilter"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/service"
)

// Stack is the service as `dealcast-dev dev` assembles it, under pprof
// labels (part=api, delivery, temporal-server, receiver).
type Stack struct {
	log                  *slog.Logger
	muted                *atomic.Bool // silences the service once Close begins
	cfg                  config.Config
	pool                 *pgxpool.Pool
	store                *store.Store
	proc                 *service.Process // telemetry and sealer; its API deps
	server               *http.Server
	BaseURL              string
	openConns, peakConns atomic.Int64
	// The delivery side: embedded Temporal, dispatcher, sweeper and worker.
	temporal       *devtemporal.Server
	temporalDir    string
	temporalStarts int
	client         client.Client
	dispatch       atomic.Pointer[delivery.Dispatcher]
	stopWork       context.CancelFunc
	working        sync.WaitGroup
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

// startStack brings the stack up on a new database; Close drops it.
func startStack(ctx context.Context, cfg Config, log *slog.Logger) (_ *Stack, err error) {
	muted := new(atomic.Bool)
	s := &Stack{log: slog.New(logfilter.Mutable(log.Handler(), muted)), muted: muted}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dbURL, err := databaseURL(cfg.DatabaseURL, "dealcast_bench_"+randomHex(), cfg.PoolMaxConns)
	if err != nil {
		return nil, err
	}
	s.cfg = config.Config{
		DatabaseURL: dbURL, TemporalNamespace: "default", TemporalCompression: config.CompressionNone, WebhookAllowPrivate: true,
		RateLimitRPS: cfg.RateLimitRPS, SecretKey: base64.StdEncoding.EncodeToString([]byte(randomHex())),
		JWTSecret: randomHex(), InvoiceTerms: config.DefaultInvoiceTerms,
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
		return nil, err
	}
	deps := s.proc.APIDeps(nil)
	if err := errors.Join(delivery.RegisterGauges(s.store), s.startDelivery(ctx)); err != nil {
		return nil, err
	}
	if deps.Verifier, err = auth.NewVerifier(ctx, auth.Options{Secret: s.cfg.JWTSecret}); err != nil {
		return nil, err
	}
	deps.Delivery, deps.Ready = s, s.store.Ping
	handler, _ := api.New(deps)
	// GET /bench/hold?ms=N answers after N ms: held requests open many connections.
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.HandleFunc("GET /bench/hold", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(min(max(ms, 0), 10_000)) * time.Millisecond):
		case <-r.Context().Done():
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.BaseURL = "http://" + ln.Addr().String()
	s.server = service.NewHTTPServer(ln.Addr().String(), mux)
	s.server.ConnState = s.connState
	s.server.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	go pprof.Do(context.Background(), pprof.Labels("part", "api"), func(context.Context) { _ = s.server.Serve(ln) })
	return s, nil
}

// startDelivery starts the delivery side on a new SQLite file, as dev does.
func (s *Stack) startDelivery(ctx context.Context) (err error) {
	if s.temporalDir, err = os.MkdirTemp("", "dealcast-bench-temporal-"); err != nil {
		return err
	}
	pprof.Do(ctx, pprof.Labels("part", "temporal-server"), func(ctx context.Context) {
		s.temporal, err = devtemporal.Start(ctx, devtemporal.Options{
			DataDir: s.temporalDir, FrontendPort: devtemporal.AnyFreePort, Namespace: s.cfg.TemporalNamespace,
			SearchAttributes: delivery.SearchAttributes, Logger: slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelError)),
		})
	})
	if err != nil {
		return fmt.Errorf("embedded temporal: %w", err)
	}
	cfg := s.cfg
	cfg.TemporalAddress = s.temporal.FrontendAddress()
	if s.client, err = service.DialTemporal(cfg, slog.New(logfilter.AtLeast(s.log.Handler(), slog.LevelWarn)), false); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(pprof.WithLabels(context.Background(), pprof.Labels("part", "delivery")))
	s.stopWork, s.temporalStarts = cancel, s.temporalStarts+1
	d := delivery.NewDispatcher(s.client, s.store, s.proc.Log, delivery.Options{Eager: true})
	s.dispatch.Store(d)
	acts := service.NewActivities(cfg, s.store, s.proc.Sealer, s.proc.Telemetry)
	acts.Delivery = d
	s.working.Go(func() { pprof.SetGoroutineLabels(runCtx); d.Run(runCtx, 8) })
	s.working.Go(func() {
		pprof.SetGoroutineLabels(runCtx)
		if err := service.RunDelivery(runCtx, s.client, d, acts, s.proc.Log); err != nil {
			s.log.Error("bench: delivery worker", "err", err)
		}
	})
	return nil
}

// stopDelivery takes the delivery side down; events stay in the outbox.
func (s *Stack) stopDelivery() {
	if s.dispatch.Store(nil); s.temporal != nil {
		s.stopWork()
		s.working.Wait()
		s.client.Close()
		_, _, s.temporal = s.temporal.Stop(), os.RemoveAll(s.temporalDir), nil
	}
}

// restartDelivery starts afresh without the events written meanwhile.
func (s *Stack) restartDelivery(ctx context.Context) error {
	s.stopDelivery()
	_, err := s.pool.Exec(ctx, `UPDATE events SET dispatched_at = now() WHERE dispatched_at IS NULL`)
	return cmp.Or(err, s.startDelivery(ctx))
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

func (s *Stack) Close() {
	s.muted.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.server != nil {
		_ = s.server.Shutdown(ctx)
	}
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

// token mints a JWT as `dealcast token` does; with a secret set it cannot fail.
func (s *Stack) token(role store.Role, id string) string {
	t, _ := auth.Mint(s.cfg.JWTSecret, role, id, 6*time.Hour, auth.MintOptions{})
	return t
}

// backlog is events not yet handed to Temporal and delivery workflows
// still running (auction and invoice workflows wait for deadlines).
type backlog struct {
	undispatched, running int64
	took                  time.Duration // the wait for it to drain
	err                   error
}

func (b backlog) drained() bool { return b.err == nil && b.undispatched+b.running == 0 }

func (b backlog) String() string {
	return fmt.Sprintf("%d events not yet handed to Temporal and %d delivery workflows still running after %v (%v)",
		b.undispatched, b.running, b.took.Round(time.Second), b.err)
}

func (s *Stack) backlog(ctx context.Context) (b backlog) {
	b.err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&b.undispatched)
	resp, err := s.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s.cfg.TemporalNamespace, Query: fmt.Sprintf(`ExecutionStatus = "Running" AND WorkflowType = %q`, delivery.WorkflowType),
	})
	b.running, b.err = resp.GetCount(), cmp.Or(b.err, err)
	return b
}

// drain waits up to timeout for the backlog to empty and returns what is left.
func (s *Stack) drain(ctx context.Context, timeout time.Duration) (b backlog) {
	start := time.Now()
	until(ctx, timeout, func() bool { b = s.backlog(ctx); return b.err != nil || b.drained() })
	b.took = time.Since(start)
	return b
}

// until polls done until it holds or timeout passes, and says which.
func until(ctx context.Context, timeout time.Duration, done func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if done() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
	}
}

// databaseURL names another database; pgbench's libpq knows no pool size.
func databaseURL(base, name string, poolMaxConns int) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL (%v)", err)
	}
	q := u.Query()
	if q.Del("pool_max_conns"); poolMaxConns > 0 {
		q.Set("pool_max_conns", strconv.Itoa(poolMaxConns))
	}
	u.Path, u.RawQuery = "/"+name, q.Encode()
	return u.String(), nil
}

func randomHex() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// seeded is sellers with authorised buyers and deals, and a token each.
type seeded struct{ sellers, buyers, deals, sellerTokens, buyerTokens []string }

// seed writes sellers authorising all buyers, deals 1 ms apart and buyer
// i's endpoint urls[i] straight to the tables: the API would be too slow.
// VACUUM leaves them as autovacuum keeps them.
func (s *Stack) seed(ctx context.Context, sellers, buyers, deals int, urls []string) (sd seeded, err error) {
	ids := func(dst *[]string, sql string, args ...any) {
		if err == nil {
			rows, _ := s.pool.Query(ctx, sql, args...)
			*dst, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
	}
	for _, a := range []struct {
		table string
		n     int
		dst   *[]string
	}{{"sellers", sellers, &sd.sellers}, {"buyers", buyers, &sd.buyers}} {
		ids(a.dst, `INSERT INTO `+a.table+` (id, name, created_at)
			SELECT gen_random_uuid(), 'bench ' || $2 || ' ' || i, now() FROM generate_series(1, $1) i RETURNING id::TEXT`, a.n, a.table)
	}
	items, _ := deal.MarshalItems([]deal.Item{{ID: "i1", Name: "Item one", Price: 600}, {ID: "i2", Name: "Item two", Price: 400}})
	ids(&sd.deals, `INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, status, items, version, created_at, updated_at)
		SELECT gen_random_uuid(), ($1::UUID[])[1 + i % cardinality($1::UUID[])], 'Bench deal', 1000, 1000, 'gbp', 'available', $3::JSONB, 1, at, at
		FROM generate_series(0, $2 - 1) i, LATERAL (SELECT now() - ($2 - i) * INTERVAL '1 ms' AS at) t RETURNING id::TEXT`, sd.sellers, deals, items)
	var grants []string
	ids(&grants, `INSERT INTO grants (seller_id, buyer_id, created_at) SELECT s, b, now()
		FROM unnest($1::UUID[]) s, unnest($2::UUID[]) b RETURNING seller_id::TEXT`, sd.sellers, sd.buyers)
	if urls != nil {
		// One sealed secret for all: the receivers do not check signatures.
		secret, _ := webhook.NewSecret()
		sealed, _ := s.proc.Sealer.Seal(secret)
		var endpoints []string
		ids(&endpoints, `INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
			SELECT gen_random_uuid(), b, u, 'bench receiver', $3, true, $4, now(), now() FROM unnest($1::UUID[], $2::TEXT[]) AS e (b, u)
			RETURNING id::TEXT`, sd.buyers, urls, []string{string(deal.EventCreated), string(deal.EventUpdated)}, sealed)
	}
	if err == nil {
		_, err = s.pool.Exec(ctx, `VACUUM (ANALYZE)`)
	}
	for _, id := range sd.sellers {
		sd.sellerTokens = append(sd.sellerTokens, s.token(store.RoleSeller, id))
	}
	for _, id := range sd.buyers {
		sd.buyerTokens = append(sd.buyerTokens, s.token(store.RoleBuyer, id))
	}
	return sd, err
}

// Pgbench runs PostgreSQL's own benchmark on a scratch database: the limit.
type Pgbench struct{ bin, dbURL string }

type Baseline struct {
	Mode         string  `json:"mode"` // -S (select only), -N (no branch/teller updates) or hot_row
	Clients      int     `json:"clients"`
	Jobs         int     `json:"jobs"`
	Seconds      int     `json:"seconds"`
	TPS          float64 `json:"tps"`
	LatencyMs    float64 `json:"latency_avg_ms"`
	Command      string  `json:"command"`
	MachineCPUUs float64 `json:"machine_cpu_us_per_tx"`
}

// hotRow is hot_auction's yardstick: every transaction updates one row.
const hotRow = "UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1;\n"

// newPgbench creates and initialises (pgbench -i) a scratch database.
func newPgbench(ctx context.Context, base string) (*Pgbench, error) {
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		return nil, errors.New("pgbench not found in PATH (install postgresql-client)")
	}
	dbURL, err := databaseURL(base, "dealcast_bench_pgbench_"+randomHex(), 0)
	if err != nil {
		return nil, err
	}
	p := &Pgbench{bin: bin, dbURL: dbURL}
	if err := database.Ensure(ctx, dbURL); err != nil {
		return nil, fmt.Errorf("create the pgbench database: %w", err)
	}
	if out, err := exec.CommandContext(ctx, bin, "-i", "-q", dbURL).CombinedOutput(); err != nil {
		p.Close()
		return nil, fmt.Errorf("pgbench -i: %w: %s", err, tail(out))
	}
	return p, nil
}

// Run runs pgbench mode (-S, -N or hot_row) with prepared statements for d.
func (p *Pgbench) Run(ctx context.Context, mode string, clients, jobs int, d time.Duration) (Baseline, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	script, shown := []string{mode}, mode
	if mode == "hot_row" {
		script, shown = []string{"-f", "-"}, "-f hot_row.sql" // the script on stdin
	}
	args := append(script, "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(jobs), "-T", strconv.Itoa(secs), p.dbURL)
	b := Baseline{Mode: mode, Clients: clients, Jobs: jobs, Seconds: secs, Command: "pgbench " + shown + " " + strings.Join(args[len(script):len(args)-1], " ")}
	// Other clients of a shared server may hold the connection slots a moment.
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, p.bin, args...)
		cmd.Stdin = strings.NewReader(hotRow)
		out, err := cmd.CombinedOutput()
		if err == nil {
			b.TPS, b.LatencyMs, err = parsePgbench(out)
			return b, err
		}
		if attempt == 5 || !bytes.Contains(out, []byte("too many clients")) || ctx.Err() != nil {
			return b, fmt.Errorf("pgbench %s: %w: %s", mode, err, tail(out))
		}
		time.Sleep(5 * time.Second)
	}
}

var (
	tpsLine     = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	latencyLine = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// parsePgbench reads the last tps (before 14 the first included connecting).
func parsePgbench(out []byte) (tps, latencyMs float64, err error) {
	all, lat := tpsLine.FindAllSubmatch(out, -1), append(latencyLine.FindSubmatch(out), nil, []byte("0"))
	if all == nil {
		return 0, 0, fmt.Errorf("no tps in pgbench output: %s", tail(out))
	}
	tps, _ = strconv.ParseFloat(string(all[len(all)-1][1]), 64)
	latencyMs, _ = strconv.ParseFloat(string(lat[1]), 64)
	return tps, latencyMs, nil
}

// Close drops the scratch database.
func (p *Pgbench) Close() { _ = database.Drop(context.Background(), p.dbURL) }

func tail(out []byte) string {
	out = bytes.TrimSpace(out)
	return string(out[max(len(out)-500, 0):])
}
