// Package bench measures Dealcast against the database's own limit. It
// starts the service in this process (API, dispatcher, delivery worker and
// an embedded Temporal server) on a fresh database, seeds its own data,
// drives real HTTP with real JWTs through vegeta, receives webhooks on real
// HTTP servers, and runs pgbench beside the API for the baselines.
// `dealcast-dev bench` runs it and writes latest.json.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// scenario is one measurement: run fills its Result.
type scenario struct {
	name string
	run  func(*runner, context.Context, *Result) error
}

// scenarios in running order: those that leave a delivery backlog behind
// (writes outpace the embedded Temporal server) come last.
var scenarios = []scenario{
	{"read", (*runner).read},
	{"list", (*runner).list},
	{"webhook_latency", (*runner).webhookLatency},
	{"webhook_throughput", (*runner).webhookThroughput},
	{"fanout", (*runner).fanout},
	{"hot_auction", (*runner).hotAuction},
	{"auction_close", (*runner).auctionClose},
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
	// DrainTimeout bounds the wait for the previous scenario's deliveries;
	// a backlog still there is thrown away with a fresh delivery side.
	DrainTimeout time.Duration

	PgbenchClients, PgbenchJobs int
	ReadConns, ReadSellers      int
	WriteConns                  int
	ListSellers, ListDeals      int
	ListConns, ListLimit        int
	ConcurrencyConns            int
	ConcurrencyRate             int
	LatencyRate, LatencyBuyers  int
	ThroughputBuyers            int
	ThroughputStartRate         int
	ThroughputSteps             int
	ThroughputStepSeconds       int
	FanoutBuyers                int
	FanoutReceivers             int
	AuctionBidders              int // hot_auction
	AuctionCloses               int // auction_close
	FloorStarters               int // workflow floor
}

// Default is the full benchmark, at the sizes of the goals.
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

// Validate reports settings that cannot run.
func (c Config) Validate() error {
	for _, s := range c.Only {
		if !slices.Contains(ScenarioNames(), s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(ScenarioNames(), ", "))
		}
	}
	for _, v := range []int{c.Seconds, c.PoolMaxConns, c.PgbenchClients, c.PgbenchJobs, c.ReadConns, c.ReadSellers,
		c.WriteConns, c.ListSellers, c.ListDeals, c.ListConns, c.ListLimit, c.ConcurrencyConns, c.ConcurrencyRate,
		c.LatencyRate, c.LatencyBuyers, c.ThroughputBuyers, c.ThroughputStartRate, c.ThroughputSteps,
		c.ThroughputStepSeconds, c.FanoutBuyers, c.FanoutReceivers, c.AuctionBidders, c.AuctionCloses, c.FloorStarters} {
		if v <= 0 {
			return errors.New("every size must be positive")
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
		if len(cfg.Only) == 0 || slices.Contains(cfg.Only, s.name) {
			selected = append(selected, s)
		}
	}
	res := &Results{Machine: machine(), Settings: Settings{
		Seconds: cfg.Seconds, PoolMaxConns: cfg.PoolMaxConns, RateLimitRPS: cfg.RateLimitRPS, GraceSeconds: cfg.Grace.Seconds(),
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
	if r.pgbench, err = newPgbench(ctx, cfg.DatabaseURL); err != nil {
		r.note("no pgbench baselines: %v", err)
	} else {
		defer r.pgbench.Close()
	}
	var failures []error
	for i, s := range selected {
		if ctx.Err() != nil {
			failures = append(failures, ctx.Err())
			break
		}
		log.Info("bench: scenario", "name", s.name)
		t0 := time.Now()
		out := &Result{Figures: map[string]any{}}
		if err := s.run(r, ctx, out); err != nil {
			out.Error = err.Error()
			log.Error("bench: scenario failed", "name", s.name, "err", err)
			failures = append(failures, fmt.Errorf("%s: %w", s.name, err))
		}
		res.add(s.name, out)
		log.Info("bench: scenario done", "name", s.name, "took", time.Since(t0).Round(time.Second))
		if i+1 < len(selected) {
			r.settle(ctx, s.name)
		}
	}
	res.Settings.Scenarios = strings.Join(res.order, ",")
	res.Settings.TemporalStarts = st.temporalStarts
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
// when they do not finish in time the backlog is noted and thrown away
// with a fresh delivery side.
func (r *runner) settle(ctx context.Context, scenario string) {
	timeout := r.cfg.DrainTimeout
	if r.skipDrain {
		timeout, r.skipDrain = 0, false
	}
	_, err := r.st.drain(ctx, timeout)
	var backlog *BacklogError
	switch {
	case err == nil:
	case !errors.As(err, &backlog):
		r.note("after %s: %v", scenario, err)
	default:
		r.note("after %s: %v; restarted the delivery side without them", scenario, err)
		if err := r.st.restartDelivery(ctx); err != nil {
			r.note("restarting the delivery side failed: %v", err)
		}
	}
}

// measure starts a scenario's measured phase: a CPU reading and, when
// asked for, a CPU profile of the process. The function it returns ends
// both and stores the CPU in out.
func (r *runner) measure(ctx context.Context, name string, out *Result) func() {
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
		out.CPU = meter.stop(ctx)
	}
}

func createFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.Create(path)
}
