package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Results is one run of the benchmark: latest.json. Each scenario's
// Result sits at the top level under its name.
type Results struct {
	Machine  Machine
	Settings Settings
	// WorkflowFloor is measured once, by write.
	WorkflowFloor *WorkflowFloor
	// Notes are what went wrong or may weigh on the figures.
	Notes []string

	scenarios map[string]*Result
	order     []string
}

func (r *Results) add(name string, res *Result) {
	if r.scenarios == nil {
		r.scenarios = map[string]*Result{}
	}
	r.scenarios[name] = res
	r.order = append(r.order, name)
}

// Scenario is the result of one scenario, nil if it did not run.
func (r *Results) Scenario(name string) *Result { return r.scenarios[name] }

func (r *Results) MarshalJSON() ([]byte, error) {
	out := map[string]any{"machine": r.Machine, "settings": r.Settings}
	if r.WorkflowFloor != nil {
		out["workflow_floor"] = r.WorkflowFloor
	}
	if len(r.Notes) > 0 {
		out["notes"] = r.Notes
	}
	for name, res := range r.scenarios {
		out[name] = res
	}
	return json.Marshal(out)
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
	Layout         string `json:"layout"`
}

// Result is one scenario: the fields every scenario has, and its own
// figures beside them in the same JSON object. Latencies are vegeta's for
// HTTP load and the service's own delivery histogram for webhooks.
type Result struct {
	Goal    string  `json:"goal"`
	Met     bool    `json:"met"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	CPU     *CPUUse `json:"cpu,omitempty"`
	Error   string  `json:"error,omitempty"`
	Figures map[string]any
	// Figure is the key figure against the goal, for the console.
	Figure string
}

func (r *Result) MarshalJSON() ([]byte, error) {
	out := maps.Clone(r.Figures)
	if out == nil {
		out = map[string]any{}
	}
	out["goal"], out["met"], out["p50_ms"], out["p90_ms"], out["p99_ms"], out["max_ms"] = r.Goal, r.Met, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs
	if r.CPU != nil {
		out["cpu"] = r.CPU
	}
	if r.Error != "" {
		out["error"] = r.Error
	}
	return json.Marshal(out)
}

// set adds figures as name, value pairs.
func (r *Result) set(kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		r.Figures[kv[i].(string)] = kv[i+1]
	}
}

func (r *Result) latency(l vegeta.LatencyMetrics) {
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)
}

func (r *Result) latencyOf(h histogram) {
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = h.quantileMs(.5), h.quantileMs(.9), h.quantileMs(.99), h.quantileMs(1)
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
	for _, name := range r.order {
		s := r.scenarios[name]
		met := "met"
		switch {
		case s.Error != "":
			met = "failed: " + s.Error
		case !s.Met:
			met = "not met"
		}
		fmt.Fprintf(&b, "%-18s %-48s %-48s %s\n", name, s.Goal, s.Figure, met)
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
