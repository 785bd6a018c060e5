package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Results is one run of the benchmark: latest.json.
type Results struct {
	Machine           Machine            `json:"machine"`
	Settings          Settings           `json:"settings"`
	Read              *ReadWriteResult   `json:"read,omitempty"`
	Write             *ReadWriteResult   `json:"write,omitempty"`
	List              *ListResult        `json:"list,omitempty"`
	Concurrency       *ConcurrencyResult `json:"concurrency,omitempty"`
	WebhookLatency    *WebhookResult     `json:"webhook_latency,omitempty"`
	WebhookThroughput *ThroughputResult  `json:"webhook_throughput,omitempty"`
	Fanout            *FanoutResult      `json:"fanout,omitempty"`
	// WorkflowFloor is measured once, by write or concurrency.
	WorkflowFloor *WorkflowFloor `json:"workflow_floor,omitempty"`
	// Notes are what went wrong or may weigh on the figures.
	Notes []string `json:"notes,omitempty"`

	ran []ranScenario
}

type ranScenario struct {
	name string
	c    *Common
}

// Machine is where the run happened; the load averages tell whether
// other work shared it.
type Machine struct {
	Cores            int    `json:"cores"`
	GOMAXPROCS       int    `json:"gomaxprocs"`
	CPU              string `json:"cpu"`
	MemoryMB         int    `json:"memory_mb"`
	GoVersion        string `json:"go_version"`
	PostgresVersion  string `json:"postgres_version"`
	OS               string `json:"os"`
	Date             string `json:"date"`
	LoadAverageStart string `json:"load_average_start"`
	LoadAverageEnd   string `json:"load_average_end"`
}

// Settings are the sizes the run used.
type Settings struct {
	Seconds         int     `json:"seconds"`
	PoolMaxConns    int     `json:"pool_max_conns"`
	RateLimitRPS    float64 `json:"rate_limit_rps"`
	GraceSeconds    float64 `json:"grace_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Scenarios       string  `json:"scenarios"` // in running order
	// TemporalStarts counts embedded Temporal servers: one, one more after
	// each run without delivery, one per backlog thrown away.
	TemporalStarts int    `json:"temporal_starts"`
	TemporalStore  string `json:"temporal_store"`
	Layout         string `json:"layout"`
}

// Common are the fields of every scenario. Latencies are vegeta's for
// HTTP load and the service's own delivery histogram for webhooks.
type Common struct {
	Goal           string  `json:"goal"`
	Met            bool    `json:"met"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	P90Ms          float64 `json:"p90_ms"`
	MaxMs          float64 `json:"max_ms"`
	Error          string  `json:"error,omitempty"`
	CPU            *CPUUse `json:"cpu"`
	TemporalErrors int64   `json:"temporal_errors"`      // error records of the embedded server
	SQLiteBusy     int64   `json:"temporal_sqlite_busy"` // of which: its SQLite file was locked
	// Figure is the key figure against the goal, for the console.
	Figure string `json:"-"`
}

func (c *Common) latency(l vegeta.LatencyMetrics) {
	c.P50Ms, c.P90Ms, c.P99Ms, c.MaxMs = ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)
}

func (c *Common) latencyOf(h histogram) {
	c.P50Ms, c.P90Ms, c.P99Ms, c.MaxMs = h.quantileMs(.5), h.quantileMs(.9), h.quantileMs(.99), h.quantileMs(1)
}

// ReadWriteResult is read or write: the API beside pgbench.
type ReadWriteResult struct {
	Common
	Ratio        float64   `json:"ratio"`
	APIRPS       float64   `json:"api_rps"`
	PgbenchTPS   float64   `json:"pgbench_tps"`
	Connections  int       `json:"connections"`
	Seconds      float64   `json:"seconds"`
	Requests     int       `json:"requests"`
	Errors       int       `json:"errors"`
	Pgbench      *Baseline `json:"pgbench,omitempty"`
	PgbenchError string    `json:"pgbench_error,omitempty"`
	// Floor is GET /healthz with the same client and connections: the
	// most any endpoint of this process could answer here.
	Floor   *Floor   `json:"http_floor,omitempty"`
	DBFloor *DBFloor `json:"db_floor,omitempty"`
	// Backlog (write) is the delivery work left when the load ended.
	Backlog *Backlog `json:"delivery_backlog,omitempty"`
	// WithoutDelivery (write) is the same load with the delivery side stopped.
	WithoutDelivery *PausedRun `json:"without_delivery,omitempty"`
}

// PausedRun is a scenario's load once more with the delivery side
// stopped: the API and the database alone, as when delivery runs elsewhere.
type PausedRun struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	APIRPS   float64 `json:"api_rps"`
	Ratio    float64 `json:"ratio,omitempty"` // to the scenario's pgbench_tps
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	Seconds  float64 `json:"seconds"`
}

// Floor is the HTTP floor of read or write.
type Floor struct {
	Path         string  `json:"path"`
	RPS          float64 `json:"rps"`
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	Ratio        float64 `json:"ratio"` // rps / pgbench_tps
	MachineCPUUs float64 `json:"machine_cpu_us_per_request"`
}

// DBFloor is the ceiling of an endpoint that costs one HTTP floor request
// and one pgbench transaction (and, for write, one workflow floor) of
// machine CPU.
type DBFloor struct {
	HTTPCPUUs         float64 `json:"http_cpu_us"`
	PgbenchCPUUs      float64 `json:"pgbench_cpu_us"`
	RPS               float64 `json:"rps"`
	Ratio             float64 `json:"ratio"`
	WorkflowCPUUs     float64 `json:"workflow_cpu_us,omitempty"`
	WithWorkflowRPS   float64 `json:"with_workflow_rps,omitempty"`
	WithWorkflowRatio float64 `json:"with_workflow_ratio,omitempty"`
}

// Backlog is the delivery work outstanding after write's load, and its
// drain with nothing else running.
type Backlog struct {
	Undispatched  int64   `json:"undispatched_events"`
	Running       int64   `json:"running_workflows"`
	DrainSeconds  float64 `json:"drain_seconds"`
	Drained       bool    `json:"drained"`
	WorkflowsPerS float64 `json:"workflows_per_s"` // outstanding to finished
	StartedPerS   float64 `json:"started_per_s"`   // handed to Temporal
	RunningAfter  int64   `json:"running_after"`
}

// ListResult is one buyer paging through many sellers' deals.
type ListResult struct {
	Common
	APIRPS      float64   `json:"api_rps"`
	Pages       int       `json:"pages"`
	Requests    int       `json:"requests"`
	Errors      int       `json:"errors"`
	Passes      int       `json:"passes"` // walks to the last page
	Deals       int       `json:"deals"`
	Sellers     int       `json:"sellers"`
	Limit       int       `json:"limit"`
	Connections int       `json:"connections"`
	Seconds     float64   `json:"seconds"`
	Explain     []Explain `json:"explain,omitempty"`
}

// Explain is EXPLAIN (ANALYZE, BUFFERS) of the buyer's list query.
type Explain struct {
	Page        string  `json:"page"`
	ExecutionMs float64 `json:"execution_ms"`
	PlanningMs  float64 `json:"planning_ms"`
	Plan        string  `json:"plan"`
}

// ConcurrencyResult is the open-loop mixed load over many connections.
type ConcurrencyResult struct {
	Common
	Errors          int        `json:"errors"`
	Requests        int        `json:"requests"`
	Reads           int        `json:"reads"`
	Writes          int        `json:"writes"`
	TargetRPS       int        `json:"target_rps"`
	APIRPS          float64    `json:"api_rps"`
	Connections     int        `json:"connections"`
	OpenConnsPeak   int        `json:"open_conns_peak"`
	OpenConnsStart  int        `json:"open_conns_start"`
	Seconds         float64    `json:"seconds"`
	WithoutDelivery *PausedRun `json:"without_delivery,omitempty"`
	// WorkflowFloorShare is the machine's share the target's writes take
	// in workflow floors alone; FloorShare adds the reads and writes at
	// the read and write database floors.
	WorkflowFloorShare float64 `json:"workflow_floor_share"`
	FloorShare         float64 `json:"floor_share"`
	// Outstanding is the delivery work left at the end, not drained.
	Outstanding *Outstanding `json:"outstanding,omitempty"`
}

// Outstanding is delivery work not yet done.
type Outstanding struct {
	Undispatched int64 `json:"undispatched_events"`
	Running      int64 `json:"running_workflows"`
}

// WebhookResult is webhook_latency.
type WebhookResult struct {
	Common
	Lost         int     `json:"lost"`
	Duplicates   int     `json:"duplicates"`
	ChangeRate   int     `json:"change_rate"`
	Buyers       int     `json:"buyers"`
	Changes      int     `json:"changes"`
	ChangeErrors int     `json:"change_errors"`
	Expected     int     `json:"expected"`
	Received     int     `json:"received"`
	Unexpected   int     `json:"unexpected"`
	Early        int     `json:"arrived_before_response"`
	Seconds      float64 `json:"seconds"`
	ChangeP99Ms  float64 `json:"change_p99_ms"` // of the PATCH requests
}

// ThroughputResult is webhook_throughput: its best step.
type ThroughputResult struct {
	Common
	DeliveriesPerS float64          `json:"deliveries_per_s"`
	Lost           int              `json:"lost"`
	Duplicates     int              `json:"duplicates"`
	Buyers         int              `json:"buyers"`
	BestStep       int              `json:"best_step"` // index into steps; -1 for none
	Sustained      bool             `json:"sustained"` // it kept up with p99 <= 1 s
	StopReason     string           `json:"stop_reason"`
	Steps          []ThroughputStep `json:"steps"`
	PostFloor      *PostFloor       `json:"post_floor,omitempty"`
	Floor          *DeliveryFloor   `json:"floor,omitempty"`
}

// ThroughputStep is one change rate of webhook_throughput.
type ThroughputStep struct {
	ChangeRate     int     `json:"change_rate"`
	Offered        int     `json:"offered_deliveries_per_s"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	Changes        int     `json:"changes"`
	ChangeErrors   int     `json:"change_errors"`
	Expected       int     `json:"expected"`
	Received       int     `json:"received"`
	Lost           int     `json:"lost"`
	Duplicates     int     `json:"duplicates"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	Seconds        float64 `json:"seconds"`
	KeptUp         bool    `json:"kept_up"`
	MachineCPUUs   float64 `json:"machine_cpu_us_per_change"`
	Refined        bool    `json:"refined"` // bisecting between two earlier steps
}

// DeliveryFloor is the ceiling of webhook_throughput here: a change
// costing one workflow floor and one bare HTTP exchange per recipient,
// every core given to delivery.
type DeliveryFloor struct {
	WorkflowCPUUs       float64 `json:"workflow_cpu_us"`
	HTTPCPUUs           float64 `json:"http_cpu_us"`
	HTTPFrom            string  `json:"http_from"` // post_floor or read.http_floor
	PerChangeCPUUs      float64 `json:"per_change_cpu_us"`
	DeliveriesPerS      float64 `json:"deliveries_per_s"`
	BurstHTTPCPUUs      float64 `json:"burst_http_cpu_us,omitempty"`
	BurstPerChangeCPUUs float64 `json:"burst_per_change_cpu_us,omitempty"`
	BurstDeliveriesPerS float64 `json:"burst_deliveries_per_s,omitempty"`
}

// FanoutResult is one change to every buyer's endpoint.
type FanoutResult struct {
	Common
	Seconds    float64 `json:"seconds"` // from the response to the last arrival
	Lost       int     `json:"lost"`
	Duplicates int     `json:"duplicates"`
	Buyers     int     `json:"buyers"`
	Receivers  int     `json:"receivers"`
	Expected   int     `json:"expected"`
	Received   int     `json:"received"`
	PerS       float64 `json:"deliveries_per_s"`
}

// WriteJSON writes the results, indented.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := createFile(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Summary is each scenario's key figure against its goal, for the
// console; latest.json has the rest.
func (r *Results) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d cores, %s, PostgreSQL %s, %s\n", r.Machine.Cores, r.Machine.CPU, r.Machine.PostgresVersion, r.Machine.Date)
	for _, s := range r.ran {
		met := "met"
		switch {
		case s.c.Error != "":
			met = "failed: " + s.c.Error
		case !s.c.Met:
			met = "not met"
		}
		fmt.Fprintf(&b, "%-18s %-44s %-48s %s\n", s.name, s.c.Goal, s.c.Figure, met)
	}
	return b.String()
}

// round keeps three decimals: enough for milliseconds and ratios.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

func ms(d time.Duration) float64 { return round(float64(d) / 1e6) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return round(a / b)
}
