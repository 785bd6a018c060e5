// Package bench measures Dealcast against the database's own limit. It
// starts the service in this process (API, dispatcher, delivery worker and
// an embedded Temporal server) on a fresh database, seeds its own data,
// drives real HTTP with real JWTs through vegeta, receives webhooks on real
// HTTP servers, and runs pgbench beside the API for the read and write
// baselines. `dealcast-dev bench` runs it and writes latest.json.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// scenario is one measurement; run stores its result in the runner's
// Results and returns the part every scenario has.
type scenario struct {
	name string
	run  func(*runner, context.Context) (*Common, error)
}

// scenarios in running order: those that leave a delivery backlog behind
// (every deal write starts a workflow, and writes outpace the embedded
// Temporal server) come last.
var scenarios = []scenario{
	{"read", (*runner).read},
	{"list", (*runner).list},
	{"webhook_latency", (*runner).webhookLatency},
	{"webhook_throughput", (*runner).webhookThroughput},
	{"fanout", (*runner).fanout},
	{"write", (*runner).write},
	{"concurrency", (*runner).concurrency},
}

// Config sizes a run. Default gives the sizes of the performance goals;
// Tiny a smoke run that only proves every scenario works.
type Config struct {
	Seconds int // each measured phase
	// DatabaseURL names the PostgreSQL server; the run creates its own
	// databases there and drops them at the end.
	DatabaseURL  string
	PoolMaxConns int
	// RateLimitRPS is far above any caller's rate: the limiter runs, and
	// costs what it costs, but never refuses.
	RateLimitRPS float64
	Only         []string // scenarios to run; empty means all
	// CPUProfile, when set, gets one CPU profile per scenario: cpu.pprof
	// becomes cpu-write.pprof and so on.
	CPUProfile string
	// Grace is how long a webhook scenario waits for arrivals after its
	// last change before counting the rest lost.
	Grace time.Duration
	// DrainTimeout bounds the wait for the previous scenario's deliveries.
	DrainTimeout time.Duration
	// Isolate restarts the delivery side when a drain times out, so the
	// next scenario does not run beside the previous one's backlog.
	Isolate bool

	Pgbench           PgbenchConfig
	Read              ReadConfig
	Write             WriteConfig
	List              ListConfig
	Concurrency       ConcurrencyConfig
	WebhookLatency    WebhookLatencyConfig
	WebhookThroughput WebhookThroughputConfig
	Fanout            FanoutConfig
	WorkflowFloor     WorkflowFloorConfig
}

// PgbenchConfig is pgbench's -c, -j and the -s of pgbench -i.
type PgbenchConfig struct{ Clients, Jobs, Scale int }

// ReadConfig: GET /v1/deals/{id} by Conns buyers authorised by Sellers.
type ReadConfig struct{ Conns, Sellers, Deals int }

// WriteConfig: POST /v1/deals of Items items by Conns sellers.
type WriteConfig struct{ Conns, Items int }

// ListConfig: one buyer paging through the deals of Sellers sellers.
type ListConfig struct{ Sellers, Deals, Conns, Limit int }

// ConcurrencyConfig: Conns open connections, Rate requests a second.
type ConcurrencyConfig struct {
	Conns, Rate int
	ReadShare   float64 // the rest are writes
}

// WebhookLatencyConfig: Rate changes a second, each to every buyer.
type WebhookLatencyConfig struct{ Rate, Buyers, Deals int }

// WebhookThroughputConfig: the change rate grows by Factor each step
// until deliveries stop keeping up; then up to Refine steps bisect.
type WebhookThroughputConfig struct {
	Buyers, Deals, StartRate int
	Factor                   float64
	MaxSteps, Refine         int
	StepSeconds              int // at most Seconds
}

// FanoutConfig: one change to Buyers endpoints on Receivers servers.
type FanoutConfig struct{ Buyers, Receivers int }

// WorkflowFloorConfig: empty workflows started back to back.
type WorkflowFloorConfig struct {
	Starters, Seconds int
	// TimerWait is how long after the last start the CPU still counts:
	// each workflow task's timeout timer fires 10 s after its start.
	TimerWait time.Duration
}

// Default is the full benchmark, at the sizes of the goals.
func Default() Config {
	return Config{
		Seconds: 30, DatabaseURL: "postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
		PoolMaxConns: 16, RateLimitRPS: 1_000_000, Grace: 30 * time.Second, DrainTimeout: 2 * time.Minute, Isolate: true,
		Pgbench:           PgbenchConfig{Clients: 64, Jobs: 2, Scale: 1},
		Read:              ReadConfig{Conns: 64, Sellers: 10, Deals: 1000},
		Write:             WriteConfig{Conns: 64, Items: 2},
		List:              ListConfig{Sellers: 50, Deals: 100_000, Conns: 8, Limit: 100},
		Concurrency:       ConcurrencyConfig{Conns: 2000, Rate: 3000, ReadShare: 0.9},
		WebhookLatency:    WebhookLatencyConfig{Rate: 20, Buyers: 10, Deals: 16},
		WebhookThroughput: WebhookThroughputConfig{Buyers: 50, Deals: 64, StartRate: 2, Factor: 2, MaxSteps: 8, Refine: 3, StepSeconds: 10},
		Fanout:            FanoutConfig{Buyers: 10_000, Receivers: 4},
		WorkflowFloor:     WorkflowFloorConfig{Starters: 8, Seconds: 10, TimerWait: 11 * time.Second},
	}
}

// Tiny is a smoke run: every scenario for about a second at toy sizes,
// on one Temporal server for the whole run.
func Tiny() Config {
	c := Default()
	c.Seconds, c.PoolMaxConns, c.Grace, c.DrainTimeout, c.Isolate = 1, 8, 20*time.Second, 5*time.Second, false
	c.Pgbench = PgbenchConfig{Clients: 2, Jobs: 1, Scale: 1}
	c.Read = ReadConfig{Conns: 4, Sellers: 2, Deals: 20}
	c.Write = WriteConfig{Conns: 2, Items: 2}
	c.List = ListConfig{Sellers: 5, Deals: 500, Conns: 2, Limit: 100}
	c.Concurrency = ConcurrencyConfig{Conns: 20, Rate: 30, ReadShare: 0.9}
	c.WebhookLatency = WebhookLatencyConfig{Rate: 5, Buyers: 2, Deals: 2}
	// One refinement step: it has a key of its own in the results.
	c.WebhookThroughput = WebhookThroughputConfig{Buyers: 3, Deals: 2, StartRate: 5, Factor: 4, MaxSteps: 2, Refine: 1, StepSeconds: 1}
	c.Fanout = FanoutConfig{Buyers: 20, Receivers: 2}
	c.WorkflowFloor = WorkflowFloorConfig{Starters: 2, Seconds: 1}
	return c
}

// Validate reports settings that cannot run.
func (c Config) Validate() error {
	for _, s := range c.Only {
		if !slices.ContainsFunc(scenarios, func(sc scenario) bool { return sc.name == s }) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(ScenarioNames(), ", "))
		}
	}
	for name, v := range map[string]int{
		"seconds": c.Seconds, "pool max conns": c.PoolMaxConns, "read conns": c.Read.Conns, "read sellers": c.Read.Sellers,
		"read deals": c.Read.Deals, "write conns": c.Write.Conns, "write items": c.Write.Items, "list sellers": c.List.Sellers,
		"list deals": c.List.Deals, "list conns": c.List.Conns, "list limit": c.List.Limit,
		"concurrency conns": c.Concurrency.Conns, "concurrency rate": c.Concurrency.Rate,
		"webhook latency rate": c.WebhookLatency.Rate, "webhook latency buyers": c.WebhookLatency.Buyers,
		"webhook latency deals": c.WebhookLatency.Deals, "throughput buyers": c.WebhookThroughput.Buyers,
		"throughput deals": c.WebhookThroughput.Deals, "throughput start rate": c.WebhookThroughput.StartRate,
		"throughput steps": c.WebhookThroughput.MaxSteps, "throughput step seconds": c.WebhookThroughput.StepSeconds,
		"fanout buyers": c.Fanout.Buyers, "fanout receivers": c.Fanout.Receivers, "pgbench clients": c.Pgbench.Clients,
		"pgbench jobs": c.Pgbench.Jobs, "pgbench scale": c.Pgbench.Scale, "workflow floor starters": c.WorkflowFloor.Starters,
	} {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	switch {
	case c.List.Limit > 100:
		return fmt.Errorf("list limit must be at most 100 (the API's maximum), got %d", c.List.Limit)
	case c.WebhookThroughput.Factor <= 1:
		return fmt.Errorf("throughput factor must be above 1, got %v", c.WebhookThroughput.Factor)
	case c.Concurrency.ReadShare < 0 || c.Concurrency.ReadShare > 1:
		return fmt.Errorf("concurrency read share must be within 0..1, got %v", c.Concurrency.ReadShare)
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

func (c Config) runs(name string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, name) }

func (c Config) duration() time.Duration { return time.Duration(c.Seconds) * time.Second }

// Run starts the stack, runs the selected scenarios in order and returns
// their results. A scenario that fails is recorded with its error and the
// run goes on; the returned error joins every such failure.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	var selected []scenario
	for _, s := range scenarios {
		if cfg.runs(s.name) {
			selected = append(selected, s)
		}
	}
	names := make([]string, len(selected))
	for i, s := range selected {
		names[i] = s.name
	}
	res := &Results{Machine: machine(), Settings: Settings{
		Seconds: cfg.Seconds, PoolMaxConns: cfg.PoolMaxConns, RateLimitRPS: cfg.RateLimitRPS,
		GraceSeconds: cfg.Grace.Seconds(), Scenarios: strings.Join(names, ","), TemporalStore: "sqlite",
		Layout: "one process: API, dispatcher (eager starts), delivery worker, sweeper and an embedded Temporal " +
			"server (SQLite), with the load generator and the webhook receivers; PostgreSQL on the same machine",
	}}
	log.Info("bench: starting the stack", "pool_max_conns", cfg.PoolMaxConns)
	st, err := startStack(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	res.Machine.PostgresVersion = st.serverVersion(ctx)
	r := &runner{cfg: cfg, st: st, log: log, res: res}
	if cfg.runs("read") || cfg.runs("write") {
		if r.pgbench, err = newPgbench(ctx, cfg.DatabaseURL, cfg.Pgbench.Scale); err != nil {
			r.note("no pgbench baseline: %v", err)
		} else {
			defer r.pgbench.Close()
		}
	}
	var failures []error
	for i, s := range selected {
		if ctx.Err() != nil {
			failures = append(failures, ctx.Err())
			break
		}
		log.Info("bench: scenario", "name", s.name)
		t0 := time.Now()
		errs0, busy0 := st.temporalErrors.Load(), st.sqliteBusy.Load()
		c, err := s.run(r, ctx)
		c.TemporalErrors, c.SQLiteBusy = st.temporalErrors.Load()-errs0, st.sqliteBusy.Load()-busy0
		if err != nil {
			c.Error = err.Error()
			log.Error("bench: scenario failed", "name", s.name, "err", err)
			failures = append(failures, fmt.Errorf("%s: %w", s.name, err))
		}
		res.ran = append(res.ran, ranScenario{s.name, c})
		log.Info("bench: scenario done", "name", s.name, "took", time.Since(t0).Round(time.Second))
		if i+1 < len(selected) {
			r.settle(ctx, s.name)
		}
	}
	res.deliveryFloor(runtime.NumCPU())
	res.Settings.TemporalStarts = st.TemporalStarts
	res.Machine.LoadAverageEnd = loadAverage()
	res.Settings.DurationSeconds = round(time.Since(began).Seconds())
	return res, errors.Join(failures...)
}

// runner runs scenarios on one stack.
type runner struct {
	cfg     Config
	st      *Stack
	log     *slog.Logger
	res     *Results
	pgbench *Pgbench
	// skipDrain says the scenario already waited for its backlog.
	skipDrain bool
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn("bench: " + msg)
	r.res.Notes = append(r.res.Notes, msg)
}

// settle waits for the deliveries of the scenario before the next one;
// when they do not finish in time the backlog is noted and, with Isolate,
// thrown away with a fresh delivery side.
func (r *runner) settle(ctx context.Context, scenario string) {
	timeout := r.cfg.DrainTimeout
	if r.skipDrain {
		timeout, r.skipDrain = 0, false
	}
	_, err := r.st.drain(ctx, timeout)
	var backlog *BacklogError
	switch {
	case err == nil:
	case !errors.As(err, &backlog) || !r.cfg.Isolate:
		r.note("after %s: %v", scenario, err)
	default:
		r.note("after %s: %v; restarted the delivery side (Temporal, dispatcher, worker) without them", scenario, err)
		if err := r.st.restartDelivery(ctx); err != nil {
			r.note("restarting the delivery side failed: %v", err)
		}
	}
}

// measure starts a scenario's measured phase: a CPU reading and, when
// asked for, a CPU profile of the process. The function it returns ends
// both and stores the CPU in c.
func (r *runner) measure(ctx context.Context, name string, c *Common) func() {
	meter := r.st.startCPUMeter(ctx)
	stopProfile := func() {}
	if base := r.cfg.CPUProfile; base != "" {
		path := strings.TrimSuffix(base, filepath.Ext(base)) + "-" + name + cmp.Or(filepath.Ext(base), ".pprof")
		if f, err := createFile(path); err != nil {
			r.note("cpu profile: %v", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			r.note("cpu profile %s: %v", path, err)
		} else {
			stopProfile = func() { pprof.StopCPUProfile(); _ = f.Close() }
		}
	}
	return func() {
		stopProfile()
		c.CPU = meter.stop(ctx)
	}
}

func createFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.Create(path)
}
