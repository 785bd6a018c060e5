package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTinyRun runs every scenario at toy sizes against PostgreSQL and an
// embedded Temporal server, so the benchmark keeps working as the service
// changes, and checks that its results have every key of the committed
// latest.json. The figures mean nothing at these sizes: only that each
// scenario measured something and lost no delivery.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	cfg := Tiny()
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		cfg.DatabaseURL = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := Run(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// Once, then again after each run without delivery (write, concurrency).
	if res.Settings.TemporalStarts != 3 {
		t.Errorf("temporal started %d times, want 3", res.Settings.TemporalStarts)
	}
	if r := res.Read; r.Requests == 0 || r.Errors > 0 || r.Floor == nil || r.Floor.RPS <= 0 || r.CPU.ProcessS <= 0 {
		t.Errorf("read: %+v", r)
	}
	if r := res.Write; r.Requests == 0 || r.Errors > 0 || r.Backlog == nil || r.WithoutDelivery == nil || r.WithoutDelivery.Requests == 0 {
		t.Errorf("write: %+v", r)
	}
	if r := res.List; r.Pages == 0 || r.Errors > 0 || r.Passes == 0 || len(r.Explain) != 2 || r.Explain[1].ExecutionMs <= 0 {
		t.Errorf("list: %+v", r)
	}
	if r := res.Concurrency; r.Errors > 0 || r.Writes == 0 || r.OpenConnsStart < cfg.Concurrency.Conns || r.Outstanding == nil {
		t.Errorf("concurrency: %+v", r)
	}
	if r := res.WebhookLatency; r.Changes == 0 || r.Received != r.Expected || r.ChangeErrors > 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
		t.Errorf("webhook_latency: %+v", r)
	}
	if r := res.WebhookThroughput; r.BestStep < 0 || r.Lost > 0 || r.PostFloor == nil || r.PostFloor.Errors > 0 ||
		r.PostFloor.BurstRequests%r.PostFloor.Conns != 0 || r.Floor == nil || r.Floor.HTTPFrom != "post_floor" {
		t.Errorf("webhook_throughput: %+v", r)
	}
	if r := res.Fanout; r.Received != cfg.Fanout.Buyers || r.Seconds <= 0 || r.MaxMs <= 0 {
		t.Errorf("fanout: %+v", r)
	}
	if f := res.WorkflowFloor; f == nil || f.Workflows == 0 || f.MachineCPUUs <= 0 {
		t.Errorf("workflow floor: %+v", f)
	}
	summary := res.Summary()
	for _, name := range ScenarioNames() {
		if !strings.Contains(summary, name) {
			t.Errorf("the summary has no line for %s:\n%s", name, summary)
		}
	}

	path := filepath.Join(t.TempDir(), "latest.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, want := jsonKeys(t, path), jsonKeys(t, filepath.Join("results", "latest.json"))
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("the results have no %s, which latest.json has", k)
		}
	}
}

// jsonKeys lists every key path in a JSON file, a[] for the elements of a.
func jsonKeys(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys = append(keys, prefix+k)
				walk(prefix+k+".", e)
			}
		case []any:
			for _, e := range v {
				walk(strings.TrimSuffix(prefix, ".")+"[].", e)
			}
		}
	}
	walk("", v)
	slices.Sort(keys)
	return slices.Compact(keys)
}

func TestBurstPacer(t *testing.T) {
	p := burstPacer{n: 3, bursts: 2, every: 100 * time.Millisecond}
	for _, c := range []struct {
		elapsed time.Duration
		hits    uint64
		wait    time.Duration
		stop    bool
	}{
		{0, 0, 0, false},
		{0, 2, 0, false}, // the first burst goes at once
		{10 * time.Millisecond, 3, 90 * time.Millisecond, false}, // the second waits for its tick
		{150 * time.Millisecond, 5, 0, false},
		{150 * time.Millisecond, 6, 0, true},
	} {
		wait, stop := p.Pace(c.elapsed, c.hits)
		if wait != c.wait || stop != c.stop {
			t.Errorf("Pace(%v, %d) = %v, %v; want %v, %v", c.elapsed, c.hits, wait, stop, c.wait, c.stop)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	// 10 observations up to 5 ms, 10 more up to 10 ms, 0 above.
	h := histogram{bounds: []float64{.005, .01, .025, math.Inf(1)}, counts: []uint64{10, 20, 20, 20}}
	for q, want := range map[float64]float64{.25: 2.5, .5: 5, .75: 7.5, 1: 10} {
		if got := h.quantileMs(q); got != want {
			t.Errorf("quantile %v = %v ms, want %v", q, got, want)
		}
	}
	before := histogram{bounds: h.bounds, counts: []uint64{10, 10, 10, 10}}
	if got := h.since(before).quantileMs(.5); got != 7.5 {
		t.Errorf("median of what came after: %v ms, want 7.5", got)
	}
	// Beyond the last finite bound: that bound, as histogram_quantile says.
	if got := (histogram{bounds: h.bounds, counts: []uint64{0, 0, 0, 4}}).quantileMs(.5); got != 25 {
		t.Errorf("in +Inf: %v ms, want 25", got)
	}
}

func TestParsePgbench(t *testing.T) {
	out := []byte(`pgbench (15.20 (Debian 15.20-0+deb12u1))
number of clients: 64
latency average = 3.702 ms
initial connection time = 61.315 ms
tps = 17287.012203 (without initial connection time)
`)
	if tps, lat, err := parsePgbench(out); err != nil || tps != 17287.012203 || lat != 3.702 {
		t.Errorf("got %v %v %v", tps, lat, err)
	}
	if _, _, err := parsePgbench([]byte("connection refused")); err == nil {
		t.Error("no error for output without tps")
	}
}

// testWriter sends the stack's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
