// Package bench measures Dealcast in this process against pgbench beside it;
// `dealcast-dev bench` runs it and writes latest.json.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/procfs"
	vegeta "github.com/tsenart/vegeta/v12/lib"
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

// scenarios in running order: those that leave a delivery backlog come last.
var scenarios = []struct {
	name, goal string
	run        func(*runner, context.Context, *Result) error
}{
	{"read", "ratio = api_rps / pgbench_tps >= 0.7", (*runner).read},
	{"list", "p99_ms <= 50; api_rps reported", (*runner).list},
	{"webhook_latency", "p50_ms <= 10, p99_ms <= 50, lost = 0", (*runner).webhookLatency},
	{"webhook_throughput", "deliveries_per_s >= 8000 with lost = 0, temporal_actions_per_change <= 0.2", (*runner).webhookThroughput},
	{"fanout", "seconds <= 1.5 to the last arrival, lost = 0", (*runner).fanout},
	{"hot_auction", "ratio = bids_per_s / pgbench_tps >= 0.5, p99_ms <= 100, accepted amounts increasing", (*runner).hotAuction},
	{"auction_close", "every auction closed within 1 s of closes_at (p99_ms <= 1000), one invoice each", (*runner).auctionClose},
	{"write", "ratio = api_rps / pgbench_tps >= 0.3; delivered_per_s >= 0.8 * api_rps and drain_s <= 5", (*runner).write},
	{"concurrency", "errors = 0 and p99_ms <= 150", (*runner).concurrency},
}

// Config sizes a run. RateLimitRPS is far above any caller's: the limiter costs but never refuses.
type Config struct {
	Seconds      int // each measured phase
	DatabaseURL  string
	PoolMaxConns int
	RateLimitRPS float64
	Only         []string // scenarios to run; empty means all
	// Grace bounds the wait for arrivals, DrainTimeout for a backlog.
	Grace, DrainTimeout time.Duration

	PgbenchClients, PgbenchJobs, ReadConns, ReadSellers, WriteConns, ListSellers, ListDeals, ListConns, ListLimit int
	ConcurrencyConns, ConcurrencyRate, LatencyRate, LatencyBuyers, FanoutBuyers, FanoutReceivers                  int
	ThroughputBuyers, ThroughputStartRate, ThroughputSteps, ThroughputStepSeconds                                 int
	AuctionBidders, AuctionCloses, FloorStarters                                                                  int
}

// Default is the full benchmark, at the sizes of the goals.
func Default() Config {
	return Config{
		Seconds: 30, DatabaseURL: "postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
		PoolMaxConns: 16, RateLimitRPS: 1_000_000, Grace: 30 * time.Second, DrainTimeout: 2 * time.Minute,
		PgbenchClients: 64, PgbenchJobs: 2, ReadConns: 64, ReadSellers: 10, WriteConns: 64,
		ListSellers: 50, ListDeals: 100_000, ListConns: 8, ListLimit: 100,
		ConcurrencyConns: 2000, ConcurrencyRate: 3000, LatencyRate: 20, LatencyBuyers: 10,
		ThroughputBuyers: 50, ThroughputStartRate: 2, ThroughputSteps: 9, ThroughputStepSeconds: 10,
		FanoutBuyers: 10_000, FanoutReceivers: 4, AuctionBidders: 64, AuctionCloses: 200, FloorStarters: 8,
	}
}

// Tiny is a smoke run: every scenario for about a second at toy sizes.
func Tiny() Config {
	c := Default()
	c.Seconds, c.PoolMaxConns, c.Grace, c.DrainTimeout = 1, 8, 20*time.Second, 5*time.Second
	c.PgbenchClients, c.PgbenchJobs, c.ReadConns, c.ReadSellers, c.WriteConns = 2, 1, 4, 2, 2
	c.ListSellers, c.ListDeals, c.ListConns = 5, 500, 2
	c.ConcurrencyConns, c.ConcurrencyRate, c.LatencyRate, c.LatencyBuyers = 20, 30, 5, 2
	c.ThroughputBuyers, c.ThroughputStartRate, c.ThroughputSteps, c.ThroughputStepSeconds = 3, 5, 2, 1
	c.FanoutBuyers, c.FanoutReceivers, c.AuctionBidders, c.AuctionCloses, c.FloorStarters = 20, 2, 4, 5, 2
	return c
}

// Validate reports unknown scenarios.
func (c Config) Validate() error {
	for _, s := range c.Only {
		if !slices.Contains(ScenarioNames(), s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(ScenarioNames(), ", "))
		}
	}
	return nil
}

// ScenarioNames lists the scenarios in running order.
func ScenarioNames() (names []string) {
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return names
}

func (c Config) duration() time.Duration { return time.Duration(c.Seconds) * time.Second }

// Run runs the selected scenarios; a failed one is recorded and the run goes on.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	// temporal_starts: one, one more per run without delivery or backlog thrown away.
	res := &Results{Machine: machine(), scenarios: map[string]*Result{}, Settings: map[string]any{
		"seconds": cfg.Seconds, "pool_max_conns": cfg.PoolMaxConns, "rate_limit_rps": cfg.RateLimitRPS, "grace_seconds": cfg.Grace.Seconds(),
		"layout": "one process: API, dispatcher (eager starts), delivery worker, sweeper and an embedded Temporal " +
			"server (SQLite), with the load generator and the webhook receivers; PostgreSQL on the same machine",
	}}
	st, err := startStack(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	r := &runner{cfg: cfg, st: st, log: log, res: res}
	if r.pgbench, err = newPgbench(ctx, cfg.DatabaseURL); err != nil {
		r.note("no pgbench baselines: %v", err)
	} else {
		defer r.pgbench.Close()
	}
	var failures []error
	for _, s := range scenarios {
		if ctx.Err() != nil || len(cfg.Only) > 0 && !slices.Contains(cfg.Only, s.name) {
			continue
		}
		if len(res.order) > 0 {
			r.settle(ctx, res.order[len(res.order)-1])
		}
		log.Info("bench: scenario", "name", s.name)
		out := &Result{Goal: s.goal, Figures: map[string]any{}}
		if err := s.run(r, ctx, out); err != nil {
			out.Error = err.Error()
			failures = append(failures, fmt.Errorf("%s: %w", s.name, err))
		}
		res.scenarios[s.name], res.order = out, append(res.order, s.name)
	}
	res.Settings["scenarios"], res.Settings["temporal_starts"] = strings.Join(res.order, ","), st.temporalStarts
	res.Machine["load_average_end"], res.Machine["postgres_version"] = loadAverage(), st.pgVersion
	res.Settings["duration_seconds"] = round(time.Since(began).Seconds())
	return res, errors.Join(append(failures, ctx.Err())...)
}

type runner struct {
	cfg       Config
	st        *Stack
	log       *slog.Logger
	res       *Results
	pgbench   *Pgbench
	skipDrain bool // the scenario already waited for its backlog
}

func (r *runner) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
	r.log.Warn("bench: " + r.res.Notes[len(r.res.Notes)-1])
}

// settle waits for the previous scenario's deliveries, so its tail does not weigh on the next.
func (r *runner) settle(ctx context.Context, previous string) {
	timeout := r.cfg.DrainTimeout
	if r.skipDrain {
		timeout, r.skipDrain = 0, false
	}
	if b := r.st.drain(ctx, timeout); b.err != nil {
		r.note("after %s: %v", previous, b.err)
	} else if !b.drained() {
		r.note("after %s: %d events not yet handed to Temporal and %d delivery workflows still running after %v; restarted the delivery side without them",
			previous, b.undispatched, b.running, b.took.Round(time.Second))
		if err := r.st.restartDelivery(ctx); err != nil {
			r.note("restarting the delivery side failed: %v", err)
		}
	}
}

// phase runs a measured load with a CPU reading around it.
func phase[T any](r *runner, ctx context.Context, res *Result, load func() T) T {
	meter := r.st.startCPUMeter(ctx)
	defer func() { res.CPU = meter.stop(ctx) }()
	return load()
}

// Results is latest.json: each scenario's Result under its name beside the rest.
type Results struct {
	Machine, Settings, WorkflowFloor map[string]any
	Notes                            []string
	scenarios                        map[string]*Result
	order                            []string
}

func (r *Results) MarshalJSON() ([]byte, error) {
	out := map[string]any{"machine": r.Machine, "settings": r.Settings, "workflow_floor": r.WorkflowFloor, "notes": r.Notes}
	for name, res := range r.scenarios {
		out[name] = res
	}
	return json.Marshal(out)
}

// Result is one scenario's JSON object; latencies are of requests or webhooks.
type Result struct {
	Goal, Error                string
	Met                        bool
	P50Ms, P90Ms, P99Ms, MaxMs float64
	CPU                        *CPUUse
	Figures                    map[string]any
}

func (r *Result) MarshalJSON() ([]byte, error) {
	out := maps.Clone(r.Figures)
	out["goal"], out["met"], out["p50_ms"], out["p90_ms"], out["p99_ms"], out["max_ms"], out["cpu"] = r.Goal, r.Met, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.CPU
	if r.Error != "" {
		out["error"] = r.Error
	}
	return json.Marshal(out)
}

func (r *Result) set(kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		r.Figures[kv[i].(string)] = kv[i+1]
	}
}

func (r *Result) load(l *load) {
	maps.Copy(r.Figures, l.figures())
	r.latency(l.Latencies)
}

func (r *Result) latency(l vegeta.LatencyMetrics) {
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)
}

func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = os.WriteFile(path, append(b, '\n'), 0o644)
	}
	return err
}

// Summary is each scenario's goal, p99 and outcome, for the console.
func (r *Results) Summary() string {
	b := fmt.Sprintln(r.Machine["cores"], "cores,", r.Machine["cpu"], ", PostgreSQL", r.Machine["postgres_version"], r.Machine["date"])
	for _, name := range r.order {
		s := r.scenarios[name]
		b += fmt.Sprintf("%-18s %-96s p99 %9.1f ms  %s\n", name, s.Goal, s.P99Ms, cmp.Or(s.Error, map[bool]string{true: "met", false: "not met"}[s.Met]))
	}
	return b
}

// round keeps three decimals: enough for milliseconds and ratios.
func round(v float64) float64                  { return math.Round(v*1000) / 1000 }
func ms(d time.Duration) float64               { return round(float64(d) / 1e6) }
func perSecond(n int, d time.Duration) float64 { return ratio(float64(n), d.Seconds()) }

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return round(a / b)
}

// CPUUse is where the CPU went in a phase: this process, the database's backends, the rest.
type CPUUse struct {
	WallS        float64 `json:"wall_s"`
	ProcessS     float64 `json:"process_s"`
	PostgresS    float64 `json:"postgres_s"`
	MachineBusyS float64 `json:"machine_busy_s"`
	OtherS       float64 `json:"other_s"`
	CapacityS    float64 `json:"capacity_s"` // wall × cores
}

var procFS, _ = procfs.NewDefaultFS() // without /proc every CPU figure reads 0

// machineBusy is the CPU seconds all cores spent busy since boot.
func machineBusy() float64 {
	s, _ := procFS.Stat()
	return s.CPUTotal.User + s.CPUTotal.Nice + s.CPUTotal.System + s.CPUTotal.IRQ + s.CPUTotal.SoftIRQ + s.CPUTotal.Steal
}

func processCPU(pid int) (float64, bool) {
	p, err := procFS.Proc(pid)
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	return st.CPUTime(), err == nil
}

func selfCPU() float64 { t, _ := processCPU(os.Getpid()); return t }

// cpuMeter misses a backend that ends within the phase (the pool keeps them).
type cpuMeter struct {
	s             *Stack
	at            time.Time
	process, busy float64
	backends      map[int]float64
}

func (s *Stack) startCPUMeter(ctx context.Context) *cpuMeter {
	return &cpuMeter{s: s, at: time.Now(), process: selfCPU(), busy: machineBusy(), backends: s.backendCPU(ctx)}
}

func (s *Stack) backendCPU(ctx context.Context) map[int]float64 {
	out := map[int]float64{}
	rows, _ := s.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int])
	for _, pid := range pids {
		out[pid], _ = processCPU(pid)
	}
	return out
}

func (m *cpuMeter) stop(ctx context.Context) *CPUUse {
	wall, proc, busy, pg := time.Since(m.at).Seconds(), selfCPU()-m.process, machineBusy()-m.busy, 0.0
	for pid, t := range m.s.backendCPU(ctx) {
		pg += t - m.backends[pid]
	}
	return &CPUUse{WallS: round(wall), ProcessS: round(proc), PostgresS: round(pg), MachineBusyS: round(busy),
		OtherS: round(max(busy-proc-pg, 0)), CapacityS: round(wall * float64(runtime.NumCPU()))}
}

// machine is where the run happens; load averages tell of other work.
func machine() map[string]any {
	m := map[string]any{"cores": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0), "go_version": runtime.Version(),
		"os": runtime.GOOS + "/" + runtime.GOARCH, "date": time.Now().UTC().Format(time.RFC3339), "load_average_start": loadAverage()}
	if mi, err := procFS.Meminfo(); err == nil && mi.MemTotal != nil {
		m["memory_mb"] = int(*mi.MemTotal / 1024)
	}
	if ci, err := procFS.CPUInfo(); err == nil && len(ci) > 0 {
		m["cpu"] = ci[0].ModelName
	}
	return m
}

func loadAverage() string {
	l, _ := procFS.LoadAvg()
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
}

// newClient speaks HTTP/1.1 keep-alive with up to conns connections.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 5 * time.Minute, DisableCompression: true,
	}}
}

type load struct{ vegeta.Metrics }

func (l *load) ok() int       { return int(math.Round(l.Success * float64(l.Requests))) }
func (l *load) errors() int   { return int(l.Requests) - l.ok() }
func (l *load) rps() float64  { return round(l.Throughput) }
func (l *load) secs() float64 { return round((l.Duration + l.Wait).Seconds()) }

func (l *load) figures() map[string]any {
	return map[string]any{"requests": l.Requests, "errors": l.errors(), "seconds": l.secs(), "api_rps": l.rps(),
		"p50_ms": ms(l.Latencies.P50), "p99_ms": ms(l.Latencies.P99)}
}

func (l *load) err() error {
	if l.errors() == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests failed: %s", l.errors(), l.Requests, strings.Join(l.Errors[:min(3, len(l.Errors))], "; "))
}

// attack sends tr's requests paced by p for d (0: until p stops); maxWorkers 0
// lets the pace, not a slow server, set the rate.
func attack(ctx context.Context, hc *http.Client, tr vegeta.Targeter, p vegeta.Pacer, d time.Duration, workers, maxWorkers int) *load {
	a := vegeta.NewAttacker(vegeta.Client(hc), vegeta.Workers(uint64(workers)), vegeta.MaxBody(0),
		vegeta.MaxWorkers(cmp.Or(uint64(maxWorkers), vegeta.DefaultMaxWorkers)))
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	l := &load{}
	for res := range a.Attack(tr, p, d, "") {
		l.Add(res)
	}
	l.Close()
	return l
}

// closedLoop: conns workers, each sending when its last request is answered.
func closedLoop(ctx context.Context, hc *http.Client, conns int, d time.Duration, tr vegeta.Targeter) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{}, d, conns, conns)
}

// openLoop: rate requests a second whether or not earlier ones are answered.
func openLoop(ctx context.Context, hc *http.Client, rate int, d time.Duration, tr vegeta.Targeter) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, min(rate, 64), 0)
}

// hits paces n requests back to back, then stops.
type hits uint64

func (n hits) Pace(_ time.Duration, sent uint64) (time.Duration, bool) { return 0, sent >= uint64(n) }
func (n hits) Rate(time.Duration) float64                              { return 0 }

func count(ctx context.Context, hc *http.Client, n, conns int, tr vegeta.Targeter) error {
	return attack(ctx, hc, tr, hits(n), 0, conns, conns).err()
}

func (s *Stack) target(method, path, token string, body []byte) vegeta.Target {
	h := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return vegeta.Target{Method: method, URL: s.BaseURL + path, Body: body, Header: h}
}

func targets(ts ...vegeta.Target) vegeta.Targeter { return vegeta.NewStaticTargeter(ts...) }

// Receivers count arrivals per webhook-id and endpoint i at {server i mod n}/e/i.
type Receivers struct {
	servers []*http.Server
	bases   []string
	mu      sync.Mutex
	seen    map[string]bool
	total   int
	latency vegeta.Metrics // of each first arrival; End is the last arrival
}

func startReceivers(n int) (*Receivers, error) {
	r := &Receivers{}
	r.track()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return r, err
		}
		srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
		r.servers, r.bases = append(r.servers, srv), append(r.bases, "http://"+ln.Addr().String())
		go pprof.Do(context.Background(), pprof.Labels("part", "receiver"), func(context.Context) { _ = srv.Serve(ln) })
	}
	return r, nil
}

func (r *Receivers) URLs(n int) (urls []string) {
	for i := range n {
		urls = append(urls, r.bases[i%len(r.bases)]+"/e/"+strconv.Itoa(i))
	}
	return urls
}

// Close stops the servers at once: a delivery still arriving is not counted.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// track counts afresh from now; the last run was drained, so arrivals are this run's.
func (r *Receivers) track() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen, r.total, r.latency = map[string]bool{}, 0, vegeta.Metrics{}
	return time.Now()
}

func (r *Receivers) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The event's created_at is its commit time: latency is commit to arrival.
	var ev struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.NewDecoder(req.Body).Decode(&ev); err != nil || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	now, key := time.Now(), req.Header.Get("webhook-id")+" "+req.URL.Path
	r.mu.Lock()
	if r.total++; !r.seen[key] {
		r.seen[key] = true
		r.latency.Add(&vegeta.Result{Code: http.StatusNoContent, Timestamp: ev.CreatedAt, Latency: now.Sub(ev.CreatedAt)})
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Delivery is what arrived; span and lastAfter end at the last arrival.
type Delivery struct {
	Expected, Received, Lost, Duplicates, buyers, changes int
	Latencies                                             vegeta.LatencyMetrics
	lastAt, from, to                                      time.Time
	span, lastAfter                                       time.Duration
	err                                                   error
}

func (r *Receivers) result(expected int) Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency.Close()
	return Delivery{Expected: expected, Received: len(r.seen), Lost: max(expected-len(r.seen), 0),
		Duplicates: r.total - len(r.seen), Latencies: r.latency.Latencies, lastAt: r.latency.End}
}

func (r *Receivers) wait(ctx context.Context, expected int, grace time.Duration) Delivery {
	until(ctx, grace, func() bool { return r.received() >= expected })
	return r.result(expected)
}

func (r *Receivers) received() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.seen) }

// Stack is the service as `dealcast-dev dev` assembles it, under pprof labels.
type Stack struct {
	log                  *slog.Logger
	muted                *atomic.Bool // silences the service once Close begins
	cfg                  config.Config
	pool                 *pgxpool.Pool
	store                *store.Store
	proc                 *service.Process // telemetry and sealer; its API deps
	server               *http.Server
	BaseURL, pgVersion   string
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
	_ = s.pool.QueryRow(ctx, `SHOW server_version`).Scan(&s.pgVersion)
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
	// GET /bench/hold answers after half a second: held requests open many connections.
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.HandleFunc("GET /bench/hold", func(http.ResponseWriter, *http.Request) { time.Sleep(500 * time.Millisecond) })
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
	s.working.Go(func() { pprof.SetGoroutineLabels(runCtx); d.Run(runCtx, delivery.Starters) })
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

// backlog is undispatched events and running delivery (not auction) workflows.
type backlog struct {
	undispatched, running int64
	took                  time.Duration // the wait for it to drain
	err                   error
}

func (b backlog) drained() bool { return b.err == nil && b.undispatched+b.running == 0 }

func (s *Stack) backlog(ctx context.Context) (b backlog) {
	b.err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE dispatched_at IS NULL`).Scan(&b.undispatched)
	resp, err := s.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s.cfg.TemporalNamespace, Query: fmt.Sprintf(`ExecutionStatus = "Running" AND WorkflowType = %q`, delivery.WorkflowType),
	})
	b.running, b.err = resp.GetCount(), cmp.Or(b.err, err)
	return b
}

// analyze refreshes planner statistics after a warm-up, as autovacuum would in service: a plan
// made while the seed's VACUUM saw the delivery tables empty scans them whole (failing: slower plans).
func (s *Stack) analyze(ctx context.Context) { _, _ = s.pool.Exec(ctx, `ANALYZE`) }

// drain waits up to timeout for the backlog to empty, and returns what is left.
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

type seeded struct{ sellers, buyers, deals, sellerTokens, buyerTokens []string }

// seed writes sellers authorising all buyers, deals 1 ms apart and buyer i's
// endpoint urls[i] straight to the tables: the API would be too slow.
func (s *Stack) seed(ctx context.Context, sellers, buyers, deals int, urls []string) (sd seeded, err error) {
	ids := func(dst *[]string, sql string, args ...any) {
		if err == nil {
			rows, _ := s.pool.Query(ctx, sql, args...)
			*dst, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
	}
	const accounts = `INSERT INTO %s (id, name, created_at) SELECT gen_random_uuid(), 'bench %[1]s ' || i, now() FROM generate_series(1, $1) i RETURNING id::TEXT`
	ids(&sd.sellers, fmt.Sprintf(accounts, "sellers"), sellers)
	ids(&sd.buyers, fmt.Sprintf(accounts, "buyers"), buyers)
	items, _ := deal.MarshalItems([]deal.Item{{ID: "i1", Name: "Item one", Price: 600}, {ID: "i2", Name: "Item two", Price: 400}})
	ids(&sd.deals, `INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, status, items, version, created_at, updated_at)
		SELECT gen_random_uuid(), ($1::UUID[])[1 + i % cardinality($1::UUID[])], 'Bench deal', 1000, 1000, 'gbp', 'available', $3::JSONB, 1, at, at
		FROM generate_series(0, $2 - 1) i, LATERAL (SELECT now() - ($2 - i) * INTERVAL '1 ms' AS at) t RETURNING id::TEXT`, sd.sellers, deals, items)
	ids(new([]string), `INSERT INTO grants (seller_id, buyer_id, created_at) SELECT s, b, now()
		FROM unnest($1::UUID[]) s, unnest($2::UUID[]) b RETURNING seller_id::TEXT`, sd.sellers, sd.buyers)
	if urls != nil {
		// One sealed secret for all: the receivers do not check signatures.
		secret, _ := webhook.NewSecret()
		sealed, _ := s.proc.Sealer.Seal(secret)
		ids(new([]string), `INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
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

// hotRow is hot_auction's yardstick: every transaction updates one row.
const hotRow = "UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1;\n"

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

// baseline runs pgbench mode (-S, -N or hot_row) as long as a load; without it, no ratio.
func (r *runner) baseline(ctx context.Context, mode string, res *Result) float64 {
	if r.pgbench == nil {
		return 0
	}
	secs, script, shown := max(r.cfg.Seconds, 1), []string{mode}, mode
	if mode == "hot_row" {
		script, shown = []string{"-f", "-"}, "-f hot_row.sql" // the script on stdin
	}
	opts := []string{"-M", "prepared", "-c", strconv.Itoa(r.cfg.PgbenchClients), "-j", strconv.Itoa(r.cfg.PgbenchJobs), "-T", strconv.Itoa(secs)}
	busy, tps, latency := machineBusy(), 0.0, 0.0
	// Other clients of a shared server may hold the connection slots a moment.
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, r.pgbench.bin, append(append(script, opts...), r.pgbench.dbURL)...)
		cmd.Stdin = strings.NewReader(hotRow)
		out, err := cmd.CombinedOutput()
		if err == nil {
			tps, latency, err = parsePgbench(out)
		}
		if err != nil && attempt < 5 && bytes.Contains(out, []byte("too many clients")) && ctx.Err() == nil {
			time.Sleep(5 * time.Second)
			continue
		} else if err != nil {
			r.note("no pgbench %s baseline: %v: %s", mode, err, tail(out))
		}
		break
	}
	res.set("pgbench_tps", round(tps), "pgbench", map[string]any{"mode": mode, "clients": r.cfg.PgbenchClients, "jobs": r.cfg.PgbenchJobs,
		"seconds": secs, "tps": tps, "latency_avg_ms": latency, "command": "pgbench " + shown + " " + strings.Join(opts, " "),
		"machine_cpu_us_per_tx": ratio((machineBusy()-busy)*1e6, tps*float64(secs))})
	return round(tps)
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
