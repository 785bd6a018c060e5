// Package bench measures Dealcast against the database's own limit. It
// starts the service stack in this process (API, dispatcher, delivery
// worker and an embedded Temporal server) on a fresh database, seeds its
// own data, drives real HTTP over loopback with real JWTs from a goroutine
// pool, receives webhooks on real HTTP servers, and runs pgbench beside
// the API for the read and write baselines. `dealcast-dev bench` runs it and
// writes bench/results/latest.json; the documents are written by people.
package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario names, which are also the keys of latest.json, in running order.
const (
	ScenarioRead              = "read"
	ScenarioWrite             = "write"
	ScenarioList              = "list"
	ScenarioConcurrency       = "concurrency"
	ScenarioWebhookLatency    = "webhook_latency"
	ScenarioWebhookThroughput = "webhook_throughput"
	ScenarioFanout            = "fanout"
)

// Scenarios lists every scenario in the order of the results table.
var Scenarios = []string{
	ScenarioRead, ScenarioWrite, ScenarioList, ScenarioConcurrency,
	ScenarioWebhookLatency, ScenarioWebhookThroughput, ScenarioFanout,
}

// runOrder is the order Run runs them: the scenarios that leave a delivery
// backlog behind (every deal write starts a delivery workflow, and writes
// outpace the embedded Temporal server) come last.
var runOrder = []string{
	ScenarioRead, ScenarioList, ScenarioWebhookLatency, ScenarioWebhookThroughput,
	ScenarioFanout, ScenarioWrite, ScenarioConcurrency,
}

// Config sizes a run. Default gives the sizes of the performance goals;
// Tiny gives a smoke run that only proves every scenario works.
type Config struct {
	// Seconds is how long each measured phase runs (BENCH_SECONDS).
	Seconds int
	// DatabaseURL names the PostgreSQL server; the run creates its own
	// databases there (dealcast_bench_<random> and a pgbench scratch one)
	// and drops them at the end. The database name in it is ignored.
	DatabaseURL string
	// PoolMaxConns is the service's pgxpool size (pool_max_conns).
	PoolMaxConns int
	// RateLimitRPS is the API's per-caller rate limit. The default is far
	// above any caller's rate here: the limiter runs, and costs what it
	// costs, but never refuses (one buyer paging or one seller changing
	// deals would otherwise meet the 200/s product default).
	RateLimitRPS float64
	// Only runs these scenarios; empty means all.
	Only []string
	// CPUProfile, when set, writes one CPU profile per scenario, named
	// after it: cpu.pprof becomes cpu-write.pprof and so on.
	CPUProfile string
	// MemProfile, when set, writes one allocation profile per scenario,
	// named as CPUProfile's: what the measured phase allocated.
	MemProfile string
	// Grace is how long a webhook scenario waits for arrivals after its
	// last change before counting the rest lost.
	Grace time.Duration
	// DrainTimeout bounds the wait between scenarios for the previous
	// scenario's delivery workflows to finish.
	DrainTimeout time.Duration
	// Isolate restarts the delivery side (a fresh embedded Temporal
	// server, dispatcher and worker) when a drain times out, so the next
	// scenario does not run beside the previous one's backlog.
	Isolate bool
	// Pgbench is the pgbench baseline of read and write.
	Pgbench PgbenchConfig

	Read              ReadConfig
	Write             WriteConfig
	List              ListConfig
	Concurrency       ConcurrencyConfig
	WebhookLatency    WebhookLatencyConfig
	WebhookThroughput WebhookThroughputConfig
	Fanout            FanoutConfig
	WorkflowFloor     WorkflowFloorConfig
}

// PgbenchConfig is how pgbench runs for the baselines.
type PgbenchConfig struct {
	Clients int // -c
	Jobs    int // -j
	Scale   int // -s of pgbench -i
}

// ReadConfig sizes the read scenario: GET /v1/deals/{id} by authorised buyers.
type ReadConfig struct {
	Conns   int // concurrent connections, one buyer each
	Sellers int // sellers authorising every buyer
	Deals   int // deals spread over the sellers
}

// WriteConfig sizes the write scenario: POST /v1/deals.
type WriteConfig struct {
	Conns int // concurrent connections, one seller each
	Items int // items per deal
}

// ListConfig sizes the list scenario: one buyer paging through every deal
// of the sellers that authorise it.
type ListConfig struct {
	Sellers int
	Deals   int
	Conns   int // concurrent clients, each paging from the start again at the end
	Limit   int // page size
}

// ConcurrencyConfig sizes the concurrency scenario: many open keep-alive
// connections, an open-loop request rate, mostly reads.
type ConcurrencyConfig struct {
	Conns     int
	Rate      int     // requests per second
	ReadShare float64 // the rest are writes
}

// WebhookLatencyConfig sizes webhook_latency: a steady change rate, each
// change delivered to every buyer's endpoint.
type WebhookLatencyConfig struct {
	Rate   int // changes per second
	Buyers int
	Deals  int // deals the changes go round
}

// WebhookThroughputConfig sizes webhook_throughput: the change rate is
// multiplied by Factor each step until the p99 passes a second or
// deliveries stop keeping up; then up to Refine more steps bisect between
// the last rate that held and the first that did not.
type WebhookThroughputConfig struct {
	Buyers      int
	Deals       int // deals the changes go round
	StartRate   int // changes per second of the first step
	Factor      float64
	MaxSteps    int
	Refine      int
	StepSeconds int // at most Seconds
}

// FanoutConfig sizes fanout: one change to every buyer's endpoint.
type FanoutConfig struct {
	Buyers    int
	Receivers int // receiver servers the endpoints are spread over
}

// WorkflowFloorConfig sizes the workflow floor, measured once per run for
// write and concurrency: empty workflows started back to back.
type WorkflowFloorConfig struct {
	Starters int // goroutines starting workflows
	Seconds  int // how long they start them, at most Seconds
	// TimerWait is how long after the last start the CPU still counts: the
	// server's workflow-task timeout timers fire 10 s after each start.
	TimerWait time.Duration
}

// Default is the full benchmark, the sizes of the goals.
func Default() Config {
	return Config{
		Seconds:      30,
		DatabaseURL:  "postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
		PoolMaxConns: 16,
		RateLimitRPS: 1_000_000,
		Grace:        30 * time.Second,
		DrainTimeout: 2 * time.Minute,
		Isolate:      true,
		Pgbench:      PgbenchConfig{Clients: 64, Jobs: 2, Scale: 1},
		Read:         ReadConfig{Conns: 64, Sellers: 10, Deals: 1000},
		Write:        WriteConfig{Conns: 64, Items: 2},
		List:         ListConfig{Sellers: 50, Deals: 100_000, Conns: 8, Limit: 100},
		Concurrency:  ConcurrencyConfig{Conns: 2000, Rate: 3000, ReadShare: 0.9},
		WebhookLatency: WebhookLatencyConfig{
			Rate: 20, Buyers: 10, Deals: 16,
		},
		WebhookThroughput: WebhookThroughputConfig{
			Buyers: 50, Deals: 64, StartRate: 2, Factor: 2, MaxSteps: 8, Refine: 3, StepSeconds: 10,
		},
		Fanout:        FanoutConfig{Buyers: 10_000, Receivers: 4},
		WorkflowFloor: WorkflowFloorConfig{Starters: 8, Seconds: 10, TimerWait: 11 * time.Second},
	}
}

// Tiny is a smoke run: every scenario for about a second at toy sizes.
func Tiny() Config {
	c := Default()
	c.Seconds = 1
	c.PoolMaxConns = 8
	c.Grace = 20 * time.Second
	c.DrainTimeout = 5 * time.Second
	c.Isolate = false // one Temporal server for the whole smoke run
	c.Pgbench = PgbenchConfig{Clients: 2, Jobs: 1, Scale: 1}
	c.Read = ReadConfig{Conns: 4, Sellers: 2, Deals: 20}
	c.Write = WriteConfig{Conns: 2, Items: 2}
	c.List = ListConfig{Sellers: 5, Deals: 500, Conns: 2, Limit: 100}
	c.Concurrency = ConcurrencyConfig{Conns: 20, Rate: 30, ReadShare: 0.9}
	c.WebhookLatency = WebhookLatencyConfig{Rate: 5, Buyers: 2, Deals: 2}
	c.WebhookThroughput = WebhookThroughputConfig{Buyers: 3, Deals: 2, StartRate: 5, Factor: 2, MaxSteps: 2, StepSeconds: 1}
	c.Fanout = FanoutConfig{Buyers: 20, Receivers: 2}
	c.WorkflowFloor = WorkflowFloorConfig{Starters: 2, Seconds: 1}
	return c
}

// ApplyEnv reads BENCH_SECONDS, BENCH_SCENARIOS, BENCH_POOL_MAX_CONNS,
// BENCH_CPUPROFILE and DATABASE_URL over c.
func (c *Config) ApplyEnv() error {
	if v := os.Getenv("BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		c.Seconds = n
	}
	if v := os.Getenv("BENCH_SCENARIOS"); v != "" {
		c.Only = SplitList(v)
	}
	if v := os.Getenv("BENCH_POOL_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("BENCH_POOL_MAX_CONNS=%q: want a positive number", v)
		}
		c.PoolMaxConns = n
	}
	if v := os.Getenv("BENCH_CPUPROFILE"); v != "" {
		c.CPUProfile = v
	}
	if v := os.Getenv("BENCH_MEMPROFILE"); v != "" {
		c.MemProfile = v
	}
	if v := os.Getenv("DATABASE_URL"); v != "" {
		c.DatabaseURL = v
	}
	return nil
}

// Validate reports settings that cannot run.
func (c Config) Validate() error {
	for _, s := range c.Only {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	positive := map[string]int{
		"seconds": c.Seconds, "pool max conns": c.PoolMaxConns,
		"read conns": c.Read.Conns, "read sellers": c.Read.Sellers, "read deals": c.Read.Deals,
		"write conns": c.Write.Conns, "write items": c.Write.Items,
		"list sellers": c.List.Sellers, "list deals": c.List.Deals, "list conns": c.List.Conns, "list limit": c.List.Limit,
		"concurrency conns": c.Concurrency.Conns, "concurrency rate": c.Concurrency.Rate,
		"webhook latency rate": c.WebhookLatency.Rate, "webhook latency buyers": c.WebhookLatency.Buyers,
		"webhook latency deals": c.WebhookLatency.Deals, "throughput deals": c.WebhookThroughput.Deals,
		"throughput buyers": c.WebhookThroughput.Buyers, "throughput start rate": c.WebhookThroughput.StartRate,
		"throughput steps": c.WebhookThroughput.MaxSteps, "throughput step seconds": c.WebhookThroughput.StepSeconds,
		"fanout buyers": c.Fanout.Buyers, "fanout receivers": c.Fanout.Receivers,
		"pgbench clients": c.Pgbench.Clients, "pgbench jobs": c.Pgbench.Jobs, "pgbench scale": c.Pgbench.Scale,
	}
	for name, v := range positive {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	if c.List.Limit > 100 {
		return fmt.Errorf("list limit must be at most 100 (the API's maximum), got %d", c.List.Limit)
	}
	if c.WebhookThroughput.Factor <= 1 {
		return fmt.Errorf("throughput factor must be above 1, got %v", c.WebhookThroughput.Factor)
	}
	if c.Concurrency.ReadShare < 0 || c.Concurrency.ReadShare > 1 {
		return fmt.Errorf("concurrency read share must be within 0..1, got %v", c.Concurrency.ReadShare)
	}
	return nil
}

// runs reports whether scenario is selected.
func (c Config) runs(scenario string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, scenario)
}

func (c Config) duration() time.Duration { return time.Duration(c.Seconds) * time.Second }

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
