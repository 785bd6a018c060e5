package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Results is one run of the benchmark: latest.json.
type Results struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`

	Read              *ReadWriteResult   `json:"read,omitempty"`
	Write             *ReadWriteResult   `json:"write,omitempty"`
	List              *ListResult        `json:"list,omitempty"`
	Concurrency       *ConcurrencyResult `json:"concurrency,omitempty"`
	WebhookLatency    *WebhookResult     `json:"webhook_latency,omitempty"`
	WebhookThroughput *ThroughputResult  `json:"webhook_throughput,omitempty"`
	Fanout            *FanoutResult      `json:"fanout,omitempty"`
	// WorkflowFloor is measured once, by write or concurrency, whichever
	// runs first.
	WorkflowFloor *WorkflowFloor `json:"workflow_floor,omitempty"`

	// Notes are what went wrong or may weigh on the figures (drains that
	// timed out, a missing pgbench).
	Notes []string `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	Cores           int    `json:"cores"`
	GOMAXPROCS      int    `json:"gomaxprocs"`
	CPU             string `json:"cpu,omitempty"`
	MemoryMB        int    `json:"memory_mb"`
	GoVersion       string `json:"go_version"`
	PostgresVersion string `json:"postgres_version"`
	OS              string `json:"os"`
	Date            string `json:"date"`
	// Load averages (1, 5, 15 min) when the run started and ended: the
	// machine may be shared, and other work skews every figure.
	LoadAverageStart string `json:"load_average_start,omitempty"`
	LoadAverageEnd   string `json:"load_average_end,omitempty"`
}

// Settings are the sizes the run used.
type Settings struct {
	Seconds         int     `json:"seconds"`
	PoolMaxConns    int     `json:"pool_max_conns"`
	RateLimitRPS    float64 `json:"rate_limit_rps"`
	GraceSeconds    float64 `json:"grace_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Scenarios       string  `json:"scenarios"` // in running order
	// TemporalStarts counts embedded Temporal servers: 1, plus one after
	// each run without delivery (write, concurrency), plus one per backlog
	// thrown away between scenarios.
	TemporalStarts int    `json:"temporal_starts"`
	TemporalStore  string `json:"temporal_store"`
	Layout         string `json:"layout"`
}

// Common are the fields of every scenario.
type Common struct {
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	P90Ms float64 `json:"p90_ms"`
	MaxMs float64 `json:"max_ms"`
	// Error is set when the scenario could not run to the end.
	Error string `json:"error,omitempty"`
	// CPU is where the CPU went during the measured phase.
	CPU *CPUUse `json:"cpu,omitempty"`
	// TemporalErrors counts the embedded Temporal server's error log
	// records during the scenario; SQLiteBusy those saying its SQLite file
	// was locked (SQLITE_BUSY).
	TemporalErrors int64 `json:"temporal_errors"`
	SQLiteBusy     int64 `json:"temporal_sqlite_busy"`
}

func (c *Common) latency(s Summary) {
	c.P50Ms, c.P90Ms, c.P99Ms, c.MaxMs = round(s.P50), round(s.P90), round(s.P99), round(s.Max)
}

// ReadWriteResult is read or write: the API beside pgbench.
type ReadWriteResult struct {
	Common
	Ratio       float64        `json:"ratio"`
	APIRPS      float64        `json:"api_rps"`
	PgbenchTPS  float64        `json:"pgbench_tps"`
	Connections int            `json:"connections"`
	Seconds     float64        `json:"seconds"`
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	Pgbench     *Baseline      `json:"pgbench,omitempty"`
	// PgbenchError is why the baseline is missing, if it is.
	PgbenchError string `json:"pgbench_error,omitempty"`
	// Floor is what the same load generator, connections and HTTP server
	// reach on a request that does none of the service's work, measured
	// after the API in the same run: the most any endpoint of this
	// process could answer on this machine.
	Floor *Floor `json:"http_floor,omitempty"`
	// DBFloor adds one pgbench transaction's cost to the HTTP floor's.
	DBFloor *DBFloor `json:"db_floor,omitempty"`
	// Backlog is, for write, the delivery work left when the measurement
	// ended (every deal starts a workflow) and how fast it then drained.
	Backlog *Backlog `json:"delivery_backlog,omitempty"`
	// WithoutDelivery is, for write, the same load again with the delivery
	// side stopped.
	WithoutDelivery *PausedRun `json:"without_delivery,omitempty"`
}

// PausedRun is a scenario's load run once more with the delivery side
// (embedded Temporal server, dispatcher, sweeper, worker) stopped, the
// events left in the outbox: what the API and the database do on this
// machine when delivery's work runs elsewhere, as it does in production.
// A diagnosis of the goal, not the goal's figure.
type PausedRun struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	APIRPS   float64 `json:"api_rps"`
	Ratio    float64 `json:"ratio,omitempty"` // api_rps / the scenario's pgbench_tps
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	Seconds  float64 `json:"seconds"`
}

// Floor is the HTTP floor of a read or write measurement.
type Floor struct {
	Path     string  `json:"path"`
	RPS      float64 `json:"rps"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	// Ratio is RPS / pgbench_tps: above it the scenario's ratio cannot go
	// here, whatever the service does per request.
	Ratio float64 `json:"ratio"`
	// MachineCPUUs is the whole machine's busy CPU per request (server,
	// load generator, kernel).
	MachineCPUUs float64 `json:"machine_cpu_us_per_request,omitempty"`
}

// DBFloor is the ceiling of an endpoint that makes one database round
// trip: each request costing one HTTP floor request and one pgbench
// transaction, in machine CPU.
type DBFloor struct {
	HTTPCPUUs    float64 `json:"http_cpu_us"`
	PgbenchCPUUs float64 `json:"pgbench_cpu_us"`
	RPS          float64 `json:"rps"`
	Ratio        float64 `json:"ratio"`
	// For write, the same with one workflow floor per request: a write
	// that also starts its delivery workflow on this machine.
	WorkflowCPUUs     float64 `json:"workflow_cpu_us,omitempty"`
	WithWorkflowRPS   float64 `json:"with_workflow_rps,omitempty"`
	WithWorkflowRatio float64 `json:"with_workflow_ratio,omitempty"`
}

// Backlog is delivery work outstanding after a write load, and its drain.
type Backlog struct {
	Undispatched int64   `json:"undispatched_events"`
	Running      int64   `json:"running_workflows"`
	DrainSeconds float64 `json:"drain_seconds"`
	Drained      bool    `json:"drained"` // false: the drain timed out
	// WorkflowsPerS is how many events per second went from
	// outstanding to finished while draining, with no other load (the
	// running count is Temporal's visibility, which may lag).
	WorkflowsPerS float64 `json:"workflows_per_s"`
	// StartedPerS is how many events per second the dispatcher and the
	// sweeper handed to Temporal meanwhile (from the outbox table).
	StartedPerS float64 `json:"started_per_s"`
	// RunningAfter is the running count when the drain ended.
	RunningAfter int64 `json:"running_after"`
}

// ListResult is one buyer paging through many sellers' deals.
type ListResult struct {
	Common
	APIRPS      float64        `json:"api_rps"`
	Pages       int            `json:"pages"`
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	Passes      int            `json:"passes"` // complete walks to the last page
	Deals       int            `json:"deals"`
	Sellers     int            `json:"sellers"`
	Limit       int            `json:"limit"`
	Connections int            `json:"connections"`
	Seconds     float64        `json:"seconds"`
	Explain     []Explain      `json:"explain,omitempty"`
}

// Explain is EXPLAIN ANALYZE of the buyer's list query.
type Explain struct {
	Page        string  `json:"page"` // "first", "middle" or a rewrite
	ExecutionMs float64 `json:"execution_ms"`
	PlanningMs  float64 `json:"planning_ms"`
	Plan        string  `json:"plan"`
}

// ConcurrencyResult is the open-loop mixed load over many connections.
type ConcurrencyResult struct {
	Common
	Errors        int            `json:"errors"`
	ErrorKinds    map[string]int `json:"error_kinds,omitempty"`
	Requests      int            `json:"requests"`
	Reads         int            `json:"reads"`
	Writes        int            `json:"writes"`
	TargetRPS     int            `json:"target_rps"`
	APIRPS        float64        `json:"api_rps"`
	Connections   int            `json:"connections"`
	OpenConnsPeak int            `json:"open_conns_peak"`
	// OpenConnsStart is how many API connections were open when the
	// measured phase began (the peak is higher when timed-out requests'
	// connections are replaced before the server sees them close).
	OpenConnsStart int     `json:"open_conns_start"`
	Seconds        float64 `json:"seconds"`
	// WithoutDelivery is the same load again with the delivery side stopped.
	WithoutDelivery *PausedRun `json:"without_delivery,omitempty"`
	// WorkflowFloorShare is the share of the machine's CPU that the target
	// rate's writes would take in workflow floors alone.
	WorkflowFloorShare float64 `json:"workflow_floor_share,omitempty"`
	// FloorShare adds to it the target's reads and writes at the read and
	// write scenarios' database floors, when those ran: the share of the
	// machine the target takes in measured floors alone.
	FloorShare float64 `json:"floor_share,omitempty"`
	// Outstanding is the delivery work the measured phase left behind
	// (counted at its end, not drained): whether delivery kept up.
	Outstanding *Outstanding `json:"outstanding,omitempty"`
}

// Outstanding is delivery work not yet done at one moment.
type Outstanding struct {
	Undispatched int64 `json:"undispatched_events"` // not yet handed to Temporal
	Running      int64 `json:"running_workflows"`   // handed over, not finished
}

// WebhookResult is webhook_latency: response to arrival at a steady rate.
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
	// ChangeP99Ms is the p99 of the PATCH requests themselves.
	ChangeP99Ms float64 `json:"change_p99_ms"`
}

// ThroughputResult is webhook_throughput: the best sustained step.
type ThroughputResult struct {
	Common
	DeliveriesPerS float64          `json:"deliveries_per_s"`
	Lost           int              `json:"lost"`
	Duplicates     int              `json:"duplicates"`
	Buyers         int              `json:"buyers"`
	BestStep       int              `json:"best_step"` // index into steps; -1 for none
	Sustained      bool             `json:"sustained"` // the best step kept up with p99 <= 1 s
	StopReason     string           `json:"stop_reason"`
	Steps          []ThroughputStep `json:"steps"`
	// PostFloor is one delivery's bare HTTP exchange, measured before the
	// steps.
	PostFloor *PostFloor `json:"post_floor,omitempty"`
	// Floor is the least a change to Buyers endpoints costs this machine,
	// from floors measured in the run; absent when they were not.
	Floor *DeliveryFloor `json:"floor,omitempty"`
}

// DeliveryFloor is the ceiling of webhook_throughput on this machine: a
// change costing one workflow floor and one bare HTTP exchange per
// recipient (client and server on loopback), with every core given to
// delivery and nothing else to do. The exchange is the POST floor
// (post_floor) when the run measured it, else the read scenario's HTTP
// floor (a GET without a body).
type DeliveryFloor struct {
	WorkflowCPUUs  float64 `json:"workflow_cpu_us"`   // workflow_floor.machine_cpu_us_per_workflow
	HTTPCPUUs      float64 `json:"http_cpu_us"`       // post_floor (or read.http_floor) machine_cpu_us_per_request
	HTTPFrom       string  `json:"http_from"`         // "post_floor" or "read.http_floor"
	PerChangeCPUUs float64 `json:"per_change_cpu_us"` // workflow + buyers × HTTP
	DeliveriesPerS float64 `json:"deliveries_per_s"`  // cores / per change × buyers
	// The same with each exchange at its cost in bursts, one per recipient
	// as a change's deliveries leave together (post_floor's bursts, at
	// their rate); absent when the run did not measure them.
	BurstHTTPCPUUs      float64 `json:"burst_http_cpu_us,omitempty"`
	BurstPerChangeCPUUs float64 `json:"burst_per_change_cpu_us,omitempty"`
	BurstDeliveriesPerS float64 `json:"burst_deliveries_per_s,omitempty"`
}

// deliveryFloor computes the throughput floor when the run measured its
// parts (the POST floor in webhook_throughput or the HTTP floor in read,
// the workflow floor in write or concurrency, which run after
// webhook_throughput).
func (r *Results) deliveryFloor(cores int) {
	t, w := r.WebhookThroughput, r.WorkflowFloor
	if t == nil || w == nil || w.MachineCPUUs <= 0 || t.Buyers <= 0 {
		return
	}
	var exchange float64 // one delivery's HTTP exchange
	from := ""
	switch {
	case t.PostFloor != nil && t.PostFloor.MachineCPUUs > 0 && t.PostFloor.Errors == 0:
		exchange, from = t.PostFloor.MachineCPUUs, "post_floor"
	case r.Read != nil && r.Read.Floor != nil && r.Read.Floor.MachineCPUUs > 0:
		exchange, from = r.Read.Floor.MachineCPUUs, "read.http_floor"
	default:
		return
	}
	perSecond := func(perChange float64) float64 { return round(float64(cores) * 1e6 / perChange * float64(t.Buyers)) }
	per := w.MachineCPUUs + float64(t.Buyers)*exchange
	t.Floor = &DeliveryFloor{
		WorkflowCPUUs: w.MachineCPUUs, HTTPCPUUs: exchange, HTTPFrom: from,
		PerChangeCPUUs: round(per), DeliveriesPerS: perSecond(per),
	}
	if p := t.PostFloor; from == "post_floor" && p.BurstMachineCPUUs > 0 && p.BurstErrors == 0 {
		burst := w.MachineCPUUs + float64(t.Buyers)*p.BurstMachineCPUUs
		t.Floor.BurstHTTPCPUUs, t.Floor.BurstPerChangeCPUUs, t.Floor.BurstDeliveriesPerS = p.BurstMachineCPUUs, round(burst), perSecond(burst)
	}
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
	// MachineCPUUs is the machine's busy CPU per change, from the step's
	// first change to its last arrival (or the wait's end).
	MachineCPUUs float64 `json:"machine_cpu_us_per_change,omitempty"`
	// Refined marks a step between two earlier ones, bisecting the rate.
	Refined bool `json:"refined,omitempty"`
}

// FanoutResult is one change to every buyer's endpoint.
type FanoutResult struct {
	Common
	Seconds    float64 `json:"seconds"`
	Lost       int     `json:"lost"`
	Duplicates int     `json:"duplicates"`
	Buyers     int     `json:"buyers"`
	Receivers  int     `json:"receivers"`
	Expected   int     `json:"expected"`
	Received   int     `json:"received"`
	// PerS is arrivals per second over the whole fan-out.
	PerS float64 `json:"deliveries_per_s"`
}

// Figure is one row of the table: a key figure against its goal.
type Figure struct {
	Scenario string
	Key      string
	Goal     string
	Value    string
	Met      bool
	P50, P99 float64
	Counts   string
	Error    string
}

// Figures lists every key figure in scenario order.
func (r *Results) Figures() []Figure {
	var out []Figure
	add := func(scenario string, c Common, key, goal, value string, met bool, counts string) {
		out = append(out, Figure{Scenario: scenario, Key: key, Goal: goal, Value: value, Met: met,
			P50: c.P50Ms, P99: c.P99Ms, Counts: counts, Error: c.Error})
	}
	for _, rw := range []struct {
		name string
		r    *ReadWriteResult
	}{{ScenarioRead, r.Read}, {ScenarioWrite, r.Write}} {
		if x := rw.r; x != nil {
			counts := fmt.Sprintf("%d requests, %d errors, %d conns, %.0f s", x.Requests, x.Errors, x.Connections, x.Seconds)
			if f := x.Floor; f != nil {
				counts += fmt.Sprintf("; HTTP floor (GET %s, same load) %.0f rps = ratio %.3f", f.Path, f.RPS, f.Ratio)
			}
			if p := x.WithoutDelivery; p != nil {
				counts += fmt.Sprintf("; the same load with the delivery side stopped: %.0f rps = ratio %.3f, p99 %.1f ms, %d errors", p.APIRPS, p.Ratio, p.P99Ms, p.Errors)
			}
			if d := x.DBFloor; d != nil {
				counts += fmt.Sprintf("; HTTP floor + one pgbench transaction (%.0f + %.0f µs of machine CPU) %.0f rps = ratio %.3f",
					d.HTTPCPUUs, d.PgbenchCPUUs, d.RPS, d.Ratio)
				if d.WithWorkflowRPS > 0 {
					counts += fmt.Sprintf("; and one workflow floor (+ %.0f µs) %.0f rps = ratio %.3f", d.WorkflowCPUUs, d.WithWorkflowRPS, d.WithWorkflowRatio)
				}
			}
			add(rw.name, x.Common, "ratio", ">= 0.7", fmt.Sprintf("%.3f (api_rps %.0f / pgbench_tps %.0f)", x.Ratio, x.APIRPS, x.PgbenchTPS), x.Ratio >= 0.7, counts)
		}
	}
	if x := r.List; x != nil {
		counts := fmt.Sprintf("%d pages of %d, %d errors, %d deals of %d sellers, %d conns", x.Pages, x.Limit, x.Errors, x.Deals, x.Sellers, x.Connections)
		add(ScenarioList, x.Common, "p99_ms", "<= 50", fmt.Sprintf("%.1f", x.P99Ms), x.P99Ms <= 50 && x.Errors == 0, counts)
		add(ScenarioList, x.Common, "api_rps", "reported", fmt.Sprintf("%.0f", x.APIRPS), true, counts)
	}
	if x := r.Concurrency; x != nil {
		counts := fmt.Sprintf("%d requests (%d reads, %d writes) at %d/s target, %.0f/s answered, %d conns open at the start (%d peak)", x.Requests, x.Reads, x.Writes, x.TargetRPS, x.APIRPS, x.OpenConnsStart, x.OpenConnsPeak)
		if p := x.WithoutDelivery; p != nil {
			counts += fmt.Sprintf("; the same load with the delivery side stopped: %d errors, p50 %.1f ms, p99 %.1f ms, %.0f/s answered", p.Errors, p.P50Ms, p.P99Ms, p.APIRPS)
		}
		if x.WorkflowFloorShare > 0 {
			counts += fmt.Sprintf("; the target's writes in workflow floors alone: %.0f %% of the machine", 100*x.WorkflowFloorShare)
		}
		if x.FloorShare > 0 {
			counts += fmt.Sprintf("; with its reads and writes at their database floors: %.0f %%", 100*x.FloorShare)
		}
		if o := x.Outstanding; o != nil {
			counts += fmt.Sprintf("; left at the end: %d events not yet handed to Temporal, %d workflows running", o.Undispatched, o.Running)
		}
		add(ScenarioConcurrency, x.Common, "errors", "= 0", fmt.Sprint(x.Errors), x.Errors == 0, counts)
		add(ScenarioConcurrency, x.Common, "p99_ms", "<= 150", fmt.Sprintf("%.1f", x.P99Ms), x.P99Ms <= 150 && x.Requests > 0, counts)
	}
	if x := r.WebhookLatency; x != nil {
		counts := fmt.Sprintf("%d changes × %d buyers, %d received, %d duplicates", x.Changes, x.Buyers, x.Received, x.Duplicates)
		add(ScenarioWebhookLatency, x.Common, "p50_ms", "<= 25", fmt.Sprintf("%.1f", x.P50Ms), x.P50Ms <= 25 && x.Received > 0, counts)
		add(ScenarioWebhookLatency, x.Common, "p99_ms", "<= 100", fmt.Sprintf("%.1f", x.P99Ms), x.P99Ms <= 100 && x.Received > 0, counts)
		add(ScenarioWebhookLatency, x.Common, "lost", "= 0", fmt.Sprint(x.Lost), x.Lost == 0 && x.Changes > 0, counts)
	}
	if x := r.WebhookThroughput; x != nil {
		counts := fmt.Sprintf("%d buyers, %d steps, stopped: %s", x.Buyers, len(x.Steps), x.StopReason)
		if x.BestStep >= 0 && x.Steps[x.BestStep].MachineCPUUs > 0 {
			counts += fmt.Sprintf("; the best step cost the machine %.0f µs of CPU per change", x.Steps[x.BestStep].MachineCPUUs)
		}
		if p := x.PostFloor; p != nil {
			counts += fmt.Sprintf("; POST floor (a bare signed POST of the %d-byte payload, answered 204, %d conns): %.0f µs of machine CPU, %.0f/s", p.BodyBytes, p.Conns, p.MachineCPUUs, p.RPS)
			if p.BurstMachineCPUUs > 0 {
				counts += fmt.Sprintf("; sent as bursts of %d at %d changes/s: %.0f µs each", p.Conns, p.BurstChangesPerS, p.BurstMachineCPUUs)
			}
		}
		if f := x.Floor; f != nil {
			what := "POST floors"
			if f.HTTPFrom != "post_floor" {
				what = "HTTP floor requests"
			}
			counts += fmt.Sprintf("; floor: one workflow floor + %d %s (%.0f + %d × %.0f µs) = %.0f deliveries/s", x.Buyers, what, f.WorkflowCPUUs, x.Buyers, f.HTTPCPUUs, f.DeliveriesPerS)
			if f.BurstDeliveriesPerS > 0 {
				counts += fmt.Sprintf(", with the POSTs at their cost in bursts (%.0f µs) %.0f deliveries/s", f.BurstHTTPCPUUs, f.BurstDeliveriesPerS)
			}
		}
		add(ScenarioWebhookThroughput, x.Common, "deliveries_per_s", ">= 5000 with lost = 0", fmt.Sprintf("%.0f (lost %d)", x.DeliveriesPerS, x.Lost),
			x.DeliveriesPerS >= 5000 && x.Lost == 0, counts)
	}
	if x := r.Fanout; x != nil {
		counts := fmt.Sprintf("%d buyers on %d receivers, %d received, %d duplicates", x.Buyers, x.Receivers, x.Received, x.Duplicates)
		add(ScenarioFanout, x.Common, "seconds", "<= 5", fmt.Sprintf("%.2f", x.Seconds), x.Seconds <= 5 && x.Received > 0, counts)
		add(ScenarioFanout, x.Common, "lost", "= 0", fmt.Sprint(x.Lost), x.Lost == 0 && x.Expected > 0, counts)
	}
	return out
}

// WriteJSON writes the results, indented, creating the directory.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Summary is the goals against this run's results, one line each, for
// the console; latest.json has the rest.
func (r *Results) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d cores, %s, PostgreSQL %s, %s\n", r.Machine.Cores, r.Machine.CPU, r.Machine.PostgresVersion, r.Machine.Date)
	for _, f := range r.Figures() {
		met := "met"
		switch {
		case f.Error != "":
			met = "failed: " + f.Error
		case !f.Met:
			met = "not met"
		}
		fmt.Fprintf(&b, "%-18s %-16s %-22s %-40s %s\n", f.Scenario, f.Key, f.Goal, f.Value, met)
	}
	return b.String()
}
