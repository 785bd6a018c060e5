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

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
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
	// Once, then again after each run without delivery (write, concurrency),
	// and once more for each backlog a slow machine did not drain in time.
	if n := res.Settings["temporal_starts"].(int); n < 3 || n > 3+len(res.Notes) {
		t.Errorf("temporal started %d times, want 3 and one per thrown-away backlog (notes: %q)", n, res.Notes)
	}
	for _, name := range ScenarioNames() {
		r := res.scenarios[name]
		if r == nil || r.Error != "" || r.CPU == nil || r.CPU.ProcessS <= 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	positive := map[string][]string{
		"read": {"requests", "api_rps"}, "write": {"requests", "api_rps"}, "list": {"pages", "passes"},
		"concurrency": {"writes", "open_conns_start"}, "webhook_latency": {"changes", "received"},
		"webhook_throughput": {"deliveries_per_s"}, "fanout": {"received", "seconds"},
		"hot_auction": {"accepted", "refused", "bids_per_s"}, "auction_close": {"invoices"},
	}
	for _, name := range []string{"webhook_throughput", "write"} {
		positive[name] = append(positive[name], "temporal_actions_per_change")
	}
	positive["write"] = append(positive["write"], "delivered_per_s")
	for _, k := range []string{"drain_s", "undelivered"} {
		if _, ok := res.scenarios["write"].Figures[k]; !ok {
			t.Errorf("write has no %s", k)
		}
	}
	for name, keys := range positive {
		for _, k := range keys {
			if v := number(res.scenarios[name].Figures[k]); v <= 0 {
				t.Errorf("%s.%s = %v, want > 0", name, k, res.scenarios[name].Figures[k])
			}
		}
	}
	for _, name := range []string{"read", "write", "list", "concurrency", "webhook_latency", "fanout", "hot_auction"} {
		if v := number(res.scenarios[name].Figures["errors"]) + number(res.scenarios[name].Figures["lost"]); v != 0 {
			t.Errorf("%s: %v errors or lost deliveries", name, v)
		}
	}
	if r := res.scenarios["hot_auction"]; r.Figures["accepted_increasing"] != true {
		t.Errorf("hot_auction: accepted bids not strictly increasing in commit order: %+v", r.Figures)
	}
	if r := res.scenarios["auction_close"]; number(r.Figures["closed"]) != float64(cfg.AuctionCloses) ||
		number(r.Figures["invoices"]) != float64(cfg.AuctionCloses) {
		t.Errorf("auction_close: %+v", r.Figures)
	}
	if r := res.scenarios["fanout"]; number(r.Figures["received"]) != float64(cfg.FanoutBuyers) {
		t.Errorf("fanout: %+v", r.Figures)
	}
	if f := res.WorkflowFloor; number(f["workflows"]) <= 0 || number(f["machine_cpu_us_per_workflow"]) <= 0 {
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

func TestHits(t *testing.T) {
	p := hits(3)
	for sent, stop := range []bool{false, false, false, true} {
		if wait, got := p.Pace(time.Second, uint64(sent)); wait != 0 || got != stop {
			t.Errorf("Pace after %d = %v, %v; want 0, %v", sent, wait, got, stop)
		}
	}
}

func TestBillableActions(t *testing.T) {
	ev := func(id int64, typ enumspb.EventType, task int64) *historypb.HistoryEvent {
		e := &historypb.HistoryEvent{EventId: id, EventType: typ}
		if typ == enumspb.EVENT_TYPE_MARKER_RECORDED {
			e.Attributes = &historypb.HistoryEvent_MarkerRecordedEventAttributes{
				MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{WorkflowTaskCompletedEventId: task}}
		}
		return e
	}
	history := []*historypb.HistoryEvent{
		ev(1, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 0),                     // 1
		ev(2, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 0),                        // free
		ev(4, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 0),                        // free
		ev(5, enumspb.EVENT_TYPE_MARKER_RECORDED, 4),                                // one for task 4
		ev(6, enumspb.EVENT_TYPE_MARKER_RECORDED, 4),                                //   however many markers
		ev(7, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 4),                        // 1
		ev(8, enumspb.EVENT_TYPE_TIMER_STARTED, 4),                                  // 1
		ev(9, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, 0),                    // 1
		ev(12, enumspb.EVENT_TYPE_MARKER_RECORDED, 11),                              // one for task 11
		ev(13, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, 11),            // 1
		ev(14, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, 11),     // 1
		ev(15, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, 11), // 1
		ev(16, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, 0),                  // free
	}
	if got := billableActions(history); got != 9 {
		t.Errorf("billableActions = %d, want 9", got)
	}
}

// number reads a figure as a float64, whichever numeric type it was set as.
func number(v any) float64 {
	switch v := v.(type) {
	case nil:
		return 0
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
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
