package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestSmoke runs every scenario at toy sizes on one stack (one embedded
// Temporal server), so the benchmark keeps working as the service changes.
// The figures mean nothing at these sizes; only that each scenario ran,
// measured something and lost no delivery is checked.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	cfg := Tiny()
	cfg.DatabaseURL = os.Getenv("TEST_DATABASE_URL")
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := Run(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	// Once, and again after each run without delivery (write, concurrency):
	// no backlog was thrown away between scenarios.
	if res.Settings.TemporalStarts != 3 {
		t.Errorf("temporal started %d times, want 3", res.Settings.TemporalStarts)
	}

	if r := res.Read; r == nil || r.Requests == 0 || r.Errors > 0 || r.APIRPS <= 0 || r.Floor == nil || r.Floor.RPS <= 0 || r.Floor.Errors > 0 {
		t.Errorf("read: %+v", r)
	} else if r.Pgbench != nil && (r.Ratio <= 0 || r.DBFloor == nil || r.DBFloor.Ratio <= 0) {
		t.Errorf("read: pgbench ran but no ratio or database floor: %+v", r)
	}
	if r := res.Write; r == nil || r.Requests == 0 || r.Errors > 0 || r.Backlog == nil || r.Floor == nil || r.Floor.RPS <= 0 {
		t.Errorf("write: %+v", r)
	} else if w := r.WithoutDelivery; w == nil || w.Requests == 0 || w.Errors > 0 || w.APIRPS <= 0 {
		t.Errorf("write without delivery: %+v", w)
	}
	if r := res.List; r == nil || r.Pages == 0 || r.Errors > 0 || r.Passes == 0 || len(r.Explain) != 2 {
		t.Errorf("list: %+v", r)
	}
	if r := res.Concurrency; r == nil || r.Requests == 0 || r.Errors > 0 || r.Writes == 0 || r.OpenConnsPeak < cfg.Concurrency.Conns {
		t.Errorf("concurrency: %+v", r)
	} else if w := r.WithoutDelivery; w == nil || w.Requests == 0 || w.Errors > 0 {
		t.Errorf("concurrency without delivery: %+v", w)
	}
	if r := res.WebhookLatency; r == nil || r.Changes == 0 || r.Received != r.Expected || r.Lost > 0 || r.ChangeErrors > 0 {
		t.Errorf("webhook_latency: %+v", r)
	}
	if r := res.WebhookThroughput; r == nil || len(r.Steps) == 0 || r.BestStep < 0 || r.DeliveriesPerS <= 0 || r.Lost > 0 {
		t.Errorf("webhook_throughput: %+v", r)
	} else {
		for i, s := range r.Steps {
			if s.MachineCPUUs <= 0 {
				t.Errorf("webhook_throughput step %d: no CPU per change: %+v", i, s)
			}
		}
		// The bursts' CPU is what remains once the idle machine's is taken
		// out; at toy sizes, beside the other test packages, that can be
		// nothing, so only the requests are checked.
		if p := r.PostFloor; p == nil || p.Requests == 0 || p.Errors > 0 || p.MachineCPUUs <= 0 || p.BodyBytes == 0 ||
			p.BurstRequests == 0 || p.BurstErrors > 0 || p.BurstRequests%p.Conns != 0 {
			t.Errorf("webhook_throughput POST floor: %+v", p)
		}
		// Its parts: the POST floor, measured by the scenario itself, and
		// the workflow floor, from write, which runs after it.
		if f, w := r.Floor, res.WorkflowFloor; f == nil || w == nil || f.WorkflowCPUUs != w.MachineCPUUs || f.HTTPFrom != "post_floor" ||
			r.PostFloor == nil || f.HTTPCPUUs != r.PostFloor.MachineCPUUs || f.PerChangeCPUUs <= f.WorkflowCPUUs || f.DeliveriesPerS <= 0 {
			t.Errorf("webhook_throughput floor: %+v (workflow floor %+v)", f, w)
		}
	}
	if r := res.Fanout; r == nil || r.Received != cfg.Fanout.Buyers || r.Lost > 0 || r.Seconds <= 0 {
		t.Errorf("fanout: %+v", r)
	}
	// Measured once, by write (the first of write and concurrency to run),
	// and used by both.
	if f := res.WorkflowFloor; f == nil || f.Workflows == 0 || f.MachineCPUUs <= 0 || f.PerS <= 0 || f.ProcessCPUUs <= 0 {
		t.Errorf("workflow floor: %+v", f)
	} else {
		if w := res.Write; w != nil && w.DBFloor != nil && (w.DBFloor.WorkflowCPUUs != f.MachineCPUUs || w.DBFloor.WithWorkflowRatio <= 0) {
			t.Errorf("write: database floor without the workflow floor: %+v", w.DBFloor)
		}
		if c := res.Concurrency; c != nil && c.WorkflowFloorShare <= 0 {
			t.Errorf("concurrency: no workflow floor share: %+v", c)
		}
		if c := res.Concurrency; c != nil && res.Read != nil && res.Read.DBFloor != nil && res.Write != nil && res.Write.DBFloor != nil && c.FloorShare <= c.WorkflowFloorShare {
			t.Errorf("concurrency: floor share %v does not add the reads and writes to the workflows' %v", c.FloorShare, c.WorkflowFloorShare)
		}
	}
	if c := res.Concurrency; c != nil && (c.Outstanding == nil || c.Outstanding.Undispatched < 0 || c.Outstanding.Running < 0) {
		t.Errorf("concurrency: no count of the delivery work left: %+v", c.Outstanding)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "latest.json")
	if err := res.WriteJSON(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range append([]string{"machine", "settings"}, Scenarios...) {
		if _, ok := keys[k]; !ok {
			t.Errorf("latest.json has no %q", k)
		}
	}
	summary := res.Summary()
	for _, k := range Scenarios {
		if !strings.Contains(summary, k) {
			t.Errorf("the summary has no line for %s:\n%s", k, summary)
		}
	}
}

func TestParsePgbench(t *testing.T) {
	out := []byte(`pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
number of clients: 64
latency average = 3.702 ms
initial connection time = 61.315 ms
tps = 17287.012203 (without initial connection time)
`)
	tps, lat, err := parsePgbench(out)
	if err != nil || tps != 17287.012203 || lat != 3.702 {
		t.Errorf("got %v %v %v", tps, lat, err)
	}
	if _, _, err := parsePgbench([]byte("connection refused")); err == nil {
		t.Error("no error for output without tps")
	}
}

func TestPercentile(t *testing.T) {
	s := summarise([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.P50 != 5 || s.P90 != 9 || s.P99 != 10 || s.Max != 10 || s.Mean != 5.5 {
		t.Errorf("%+v", s)
	}
	if got := summarise(nil); got.P99 != 0 || got.Count != 0 {
		t.Errorf("%+v", got)
	}
}

func TestProfilePath(t *testing.T) {
	for in, want := range map[string]string{
		"bench/results/cpu.pprof": "bench/results/cpu-write.pprof",
		"cpu":                     "cpu-write.pprof",
	} {
		if got := profilePath(in, "write"); got != want {
			t.Errorf("profilePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBestStep(t *testing.T) {
	steps := []ThroughputStep{
		{DeliveriesPerS: 100, KeptUp: true, P99Ms: 50},
		{DeliveriesPerS: 200, KeptUp: true, P99Ms: 80},
		{DeliveriesPerS: 250, KeptUp: false, P99Ms: 1500},
	}
	if i, sustained := bestStep(steps); i != 1 || !sustained {
		t.Errorf("got %d %v", i, sustained)
	}
	if i, sustained := bestStep(steps[2:]); i != 0 || sustained {
		t.Errorf("got %d %v", i, sustained)
	}
	if i, _ := bestStep([]ThroughputStep{{DeliveriesPerS: 10, Lost: 1}}); i != -1 {
		t.Errorf("a step with losses chosen: %d", i)
	}
}

func TestStepStop(t *testing.T) {
	for _, c := range []struct {
		s    ThroughputStep
		want string
	}{
		{ThroughputStep{ChangeRate: 64, Offered: 3200, DeliveriesPerS: 3200, KeptUp: true, P99Ms: 80}, ""},
		{ThroughputStep{ChangeRate: 64, Lost: 2, P99Ms: 80}, "2 deliveries lost at 64 changes/s"},
		{ThroughputStep{ChangeRate: 96, P99Ms: 1200}, "p99 passed 1 s at 96 changes/s"},
		{ThroughputStep{ChangeRate: 100, ChangeErrors: 1, DeliveriesPerS: 4900, Offered: 5000, P99Ms: 200}, "1 changes failed at 100 changes/s"},
		{ThroughputStep{ChangeRate: 100, DeliveriesPerS: 4000, Offered: 5000, P99Ms: 200}, "deliveries fell behind at 100 changes/s (4000 of 5000/s)"},
	} {
		if got := stepStop(c.s); got != c.want {
			t.Errorf("stepStop(%+v) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestLessIdle(t *testing.T) {
	for _, c := range []struct{ gross, idle, want float64 }{
		{10, 0.5, 9.5}, // a full run: the background is taken out
		{10, 0, 10},
		{1, 0.6, 1}, // the estimate would take most of it: kept gross
		{1, 1.5, 1},
	} {
		if got := lessIdle(c.gross, c.idle); got != c.want {
			t.Errorf("lessIdle(%v, %v) = %v, want %v", c.gross, c.idle, got, c.want)
		}
	}
}

func TestFloorShare(t *testing.T) {
	read := &ReadWriteResult{DBFloor: &DBFloor{HTTPCPUUs: 60, PgbenchCPUUs: 40}}
	write := &ReadWriteResult{DBFloor: &DBFloor{HTTPCPUUs: 50, PgbenchCPUUs: 200}}
	// 2,700 reads at 100 µs, 300 writes at 250 + 5,000 µs, on 2 cores:
	// (0.27 + 1.575) / 2.
	if got := floorShare(3000, 0.9, read, write, 5000, 2); math.Abs(got-0.9225) > 0.001 {
		t.Errorf("floorShare = %v, want 0.9225", got)
	}
	if got := floorShare(3000, 0.9, nil, write, 5000, 2); got != 0 {
		t.Errorf("without the read floor: %v, want 0", got)
	}
	if got := floorShare(3000, 0.9, read, &ReadWriteResult{}, 5000, 2); got != 0 {
		t.Errorf("without the write floor: %v, want 0", got)
	}
	if got := floorShare(3000, 0.9, read, write, 0, 2); got != 0 {
		t.Errorf("without the workflow floor: %v, want 0", got)
	}
}

// testWriter sends the stack's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBisect(t *testing.T) {
	for _, tc := range []struct {
		good, bad, want int
		ok              bool
	}{
		{32, 64, 48, true},
		{32, 48, 40, true},
		{40, 48, 44, true},
		{40, 44, 0, false}, // within an eighth of 40
		{0, 2, 0, false},   // nothing held
		{8, 0, 0, false},   // nothing failed
		{1, 3, 2, true},
		{1, 2, 0, false},
	} {
		got, ok := bisect(tc.good, tc.bad)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bisect(%d, %d) = %d, %v; want %d, %v", tc.good, tc.bad, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsWrite(t *testing.T) {
	for _, tc := range []struct {
		n     int
		share float64
		want  int
	}{
		{30, 0.1, 3},
		{10, 0.1, 1},
		{100, 0.25, 25},
		{50, 0, 0},
		{7, 1, 7},
	} {
		got := 0
		for i := 0; i < tc.n; i++ {
			if isWrite(i, tc.share) {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("%d requests at write share %v: %d writes, want %d", tc.n, tc.share, got, tc.want)
		}
	}
}

func TestDBFloor(t *testing.T) {
	res := &ReadWriteResult{PgbenchTPS: 20000,
		Floor:   &Floor{MachineCPUUs: 100},
		Pgbench: &Baseline{MachineCPUUs: 100}}
	d := dbFloor(res, 2)
	if d == nil || d.RPS != 10000 || d.Ratio != 0.5 {
		t.Errorf("got %+v, want 10000 rps, ratio 0.5", d)
	}
	// One 300 µs workflow per write: 2 cores / 500 µs.
	withWorkflow(d, &WorkflowFloor{MachineCPUUs: 300}, res.PgbenchTPS, 2)
	if d.WithWorkflowRPS != 4000 || d.WithWorkflowRatio != 0.2 || d.WorkflowCPUUs != 300 {
		t.Errorf("with a workflow: got %+v, want 4000 rps, ratio 0.2", d)
	}
	res.Floor.MachineCPUUs = 0
	if d := dbFloor(res, 2); d != nil {
		t.Errorf("a floor without its CPU gave %+v", d)
	}
}

func TestDeliveryFloor(t *testing.T) {
	r := &Results{
		WebhookThroughput: &ThroughputResult{Buyers: 50, PostFloor: &PostFloor{Requests: 10, MachineCPUUs: 100}},
		WorkflowFloor:     &WorkflowFloor{MachineCPUUs: 5000},
		Read:              &ReadWriteResult{Floor: &Floor{MachineCPUUs: 200}},
	}
	// 5,000 + 50 × 100 µs a change: 2 cores give 200 changes, 10,000 deliveries a second.
	r.deliveryFloor(2)
	if f := r.WebhookThroughput.Floor; f == nil || f.HTTPFrom != "post_floor" || f.PerChangeCPUUs != 10000 || f.DeliveriesPerS != 10000 || f.BurstDeliveriesPerS != 0 {
		t.Errorf("with a POST floor: got %+v", f)
	}
	// With its bursts measured: 5,000 + 50 × 150 µs, 160 changes, 8,000 deliveries a second.
	r.WebhookThroughput.PostFloor.BurstMachineCPUUs = 150
	r.deliveryFloor(2)
	if f := r.WebhookThroughput.Floor; f == nil || f.DeliveriesPerS != 10000 || f.BurstPerChangeCPUUs != 12500 || f.BurstDeliveriesPerS != 8000 {
		t.Errorf("with the POST floor's bursts: got %+v", f)
	}
	// A POST floor with errors is not a floor: the read's HTTP floor stands in.
	r.WebhookThroughput.PostFloor.Errors = 1
	r.deliveryFloor(2)
	if f := r.WebhookThroughput.Floor; f == nil || f.HTTPFrom != "read.http_floor" || f.PerChangeCPUUs != 15000 {
		t.Errorf("from the read's floor: got %+v", f)
	}
	r.WebhookThroughput.Floor, r.Read = nil, nil
	r.deliveryFloor(2)
	if f := r.WebhookThroughput.Floor; f != nil {
		t.Errorf("without an HTTP floor: got %+v", f)
	}
}

var allocSink [][]byte

//go:noinline
func allocBefore() {
	for range 64 {
		allocSink = append(allocSink, make([]byte, 1<<20))
	}
}

//go:noinline
func allocDuring() {
	for range 64 {
		allocSink = append(allocSink, make([]byte, 1<<20))
	}
}

// TestAllocDelta: the allocation profile of a phase holds what was
// allocated during it, not what was allocated before.
func TestAllocDelta(t *testing.T) {
	allocBefore()
	before, err := allocSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	allocDuring()
	path := filepath.Join(t.TempDir(), "mem.pprof")
	if err := writeAllocDelta(path, before); err != nil {
		t.Fatal(err)
	}
	allocSink = nil
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	space := -1
	for i, st := range p.SampleType {
		if st.Type == "alloc_space" {
			space = i
		}
	}
	if space < 0 {
		t.Fatalf("no alloc_space in %v", p.SampleType)
	}
	bytesIn := func(fn string) int64 {
		var n int64
		for _, s := range p.Sample {
			for _, loc := range s.Location {
				for _, l := range loc.Line {
					if strings.HasSuffix(l.Function.Name, "."+fn) {
						n += s.Value[space]
					}
				}
			}
		}
		return n
	}
	if got := bytesIn("allocDuring"); got < 32<<20 {
		t.Errorf("allocDuring: %d bytes in the profile, want about 64 MiB", got)
	}
	if got := bytesIn("allocBefore"); got > 1<<20 {
		t.Errorf("allocBefore: %d bytes in the profile, want none", got)
	}
}
