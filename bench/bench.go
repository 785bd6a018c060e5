// Package bench measures Dealcast, run in this process on a fresh database,
// with vegeta and real webhook receivers, against pgbench beside it.
// `dealcast-dev bench` runs it and writes latest.json.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// scenarios in running order: those that leave a delivery backlog come last.
var scenarios = []struct {
	name, goal string
	run        func(*runner, context.Context, *Result) error
}{
	{"read", rwGoal, (*runner).read},
	{"list", "p99_ms <= 50; api_rps reported", (*runner).list},
	{"webhook_latency", "p50_ms <= 25, p99_ms <= 100, lost = 0", (*runner).webhookLatency},
	{"webhook_throughput", "deliveries_per_s >= 5000 with lost = 0", (*runner).webhookThroughput},
	{"fanout", "seconds <= 5 to the last arrival, lost = 0", (*runner).fanout},
	{"hot_auction", "ratio = bids_per_s / pgbench_tps >= 0.5, p99_ms <= 100, accepted amounts increasing", (*runner).hotAuction},
	{"auction_close", "every auction closed within 1 s of closes_at (p99_ms <= 1000), one invoice each", (*runner).auctionClose},
	{"write", rwGoal + "; delivered_per_s >= 0.8 * api_rps and drain_s <= 5", (*runner).write},
	{"concurrency", "errors = 0 and p99_ms <= 150", (*runner).concurrency},
}

const rwGoal = "ratio = api_rps / pgbench_tps >= 0.7"

// Config sizes a run. RateLimitRPS is far above any caller's rate: the
// limiter runs, and costs what it costs, but never refuses.
type Config struct {
	Seconds      int // each measured phase
	DatabaseURL  string
	PoolMaxConns int
	RateLimitRPS float64
	Only         []string // scenarios to run; empty means all
	CPUProfile   string   // cpu.pprof becomes cpu-write.pprof and so on
	// Grace bounds the wait for arrivals, DrainTimeout for a backlog.
	Grace, DrainTimeout time.Duration

	PgbenchClients, PgbenchJobs, ReadConns, ReadSellers, WriteConns, ListSellers, ListDeals, ListConns, ListLimit int
	ConcurrencyConns, ConcurrencyRate, LatencyRate, LatencyBuyers, FanoutBuyers, FanoutReceivers                  int
	ThroughputBuyers, ThroughputStartRate, ThroughputSteps, ThroughputStepSeconds                                 int
	AuctionBidders, AuctionCloses, FloorStarters                                                                  int // hot_auction, auction_close, workflow floor
}

func Default() Config {
	return Config{
		Seconds: 30, DatabaseURL: "postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
		PoolMaxConns: 16, RateLimitRPS: 1_000_000, Grace: 30 * time.Second, DrainTimeout: 2 * time.Minute,
		PgbenchClients: 64, PgbenchJobs: 2, ReadConns: 64, ReadSellers: 10, WriteConns: 64,
		ListSellers: 50, ListDeals: 100_000, ListConns: 8, ListLimit: 100,
		ConcurrencyConns: 2000, ConcurrencyRate: 3000, LatencyRate: 20, LatencyBuyers: 10,
		ThroughputBuyers: 50, ThroughputStartRate: 2, ThroughputSteps: 8, ThroughputStepSeconds: 10,
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

func (c Config) Validate() error {
	for _, s := range c.Only {
		if !slices.Contains(ScenarioNames(), s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(ScenarioNames(), ", "))
		}
	}
	if c.ListLimit > 100 {
		return fmt.Errorf("list limit must be at most 100 (the API's maximum), got %d", c.ListLimit)
	}
	return nil
}

// ScenarioNames lists the scenarios in running order.
func ScenarioNames() []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.name)
	}
	return out
}

func (c Config) duration() time.Duration { return time.Duration(c.Seconds) * time.Second }

// Run runs the selected scenarios; one that fails is recorded with its
// error and the run goes on.
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
	var version string
	_ = st.pool.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	res.Machine["postgres_version"] = version
	r := &runner{cfg: cfg, st: st, log: log, res: res}
	if r.pgbench, err = newPgbench(ctx, cfg.DatabaseURL); err != nil {
		r.note("no pgbench baselines: %v", err)
	} else {
		defer r.pgbench.Close()
	}
	var failures []error
	for _, s := range scenarios {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, s.name) {
			continue
		}
		if ctx.Err() != nil {
			failures = append(failures, ctx.Err())
			break
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
	res.Machine["load_average_end"], res.Settings["duration_seconds"] = loadAverage(), round(time.Since(began).Seconds())
	return res, errors.Join(failures...)
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
	msg := fmt.Sprintf(format, args...)
	r.log.Warn("bench: " + msg)
	r.res.Notes = append(r.res.Notes, msg)
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
		r.note("after %s: %v; restarted the delivery side without them", previous, b)
		if err := r.st.restartDelivery(ctx); err != nil {
			r.note("restarting the delivery side failed: %v", err)
		}
	}
}

// phase runs a measured load with a CPU reading and, if asked, a CPU profile.
func phase[T any](r *runner, ctx context.Context, name string, res *Result, load func() T) T {
	meter := r.st.startCPUMeter(ctx)
	if base := r.cfg.CPUProfile; base != "" {
		path := strings.TrimSuffix(base, filepath.Ext(base)) + "-" + name + cmp.Or(filepath.Ext(base), ".pprof")
		f, err := os.Create(path)
		if err == nil {
			defer f.Close()
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			r.note("cpu profile: %v", err)
		} else {
			defer pprof.StopCPUProfile()
		}
	}
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

// Scenario is the result of one scenario, nil if it did not run.
func (r *Results) Scenario(name string) *Result { return r.scenarios[name] }

func (r *Results) MarshalJSON() ([]byte, error) {
	out := map[string]any{"machine": r.Machine, "settings": r.Settings, "workflow_floor": r.WorkflowFloor, "notes": r.Notes}
	for name, res := range r.scenarios {
		out[name] = res
	}
	return json.Marshal(out)
}

// Result is one scenario's JSON object; Figure is its key figure for the
// console. Latencies are of HTTP requests, or webhooks from commit to arrival.
type Result struct {
	Goal, Figure, Error        string
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

// Summary is each scenario's key figure against its goal, for the console.
func (r *Results) Summary() string {
	b := fmt.Sprintln(r.Machine["cores"], "cores,", r.Machine["cpu"], ", PostgreSQL", r.Machine["postgres_version"], r.Machine["date"])
	for _, name := range r.order {
		s := r.scenarios[name]
		b += fmt.Sprintf("%-18s %-48s %-48s %s\n", name, s.Goal, s.Figure, cmp.Or(s.Error, map[bool]string{true: "met", false: "not met"}[s.Met]))
	}
	return b
}

// round keeps three decimals: enough for milliseconds and ratios.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

func ms(d time.Duration) float64 { return round(float64(d) / 1e6) }

func perSecond(n int, d time.Duration) float64 { return ratio(float64(n), d.Seconds()) }

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return round(a / b)
}

// CPUUse is where the CPU went in a phase: this process (service, Temporal,
// load and receivers), the database backends, and the machine's rest.
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
	c := s.CPUTotal
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
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

// cpuMeter reads the CPU at the start and end of a phase; a backend that
// ends within it is missed (the service's pool keeps them).
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
