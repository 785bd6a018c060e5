package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Run starts the stack, runs the selected scenarios in order and returns
// their results. A scenario that fails is recorded with its error and the
// run goes on; the returned error joins every such failure.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	res := &Results{
		Machine: machine(),
		Settings: Settings{
			Seconds:      cfg.Seconds,
			PoolMaxConns: cfg.PoolMaxConns,
			RateLimitRPS: cfg.RateLimitRPS,
			GraceSeconds: cfg.Grace.Seconds(),
			Scenarios:    strings.Join(selectedIn(cfg, runOrder), ","),
			Layout: "one process: API, dispatcher (eager starts), delivery worker, sweeper and an embedded Temporal " +
				"server (SQLite), with the load generator and the webhook receivers; PostgreSQL on the same machine",
		},
	}
	log.Info("bench: starting the stack", "pool_max_conns", cfg.PoolMaxConns)
	st, err := startStack(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	res.Machine.PostgresVersion = st.serverVersion(ctx)
	r := &runner{cfg: cfg, st: st, log: log, res: res, cpu: map[string]*CPUUse{}}
	if cfg.runs(ScenarioRead) || cfg.runs(ScenarioWrite) {
		r.pgbench, err = newPgbench(ctx, cfg.DatabaseURL, cfg.Pgbench.Scale)
		if err != nil {
			r.note("no pgbench baseline: %v", err)
		} else {
			defer r.pgbench.Close()
		}
	}
	var failures []error
	order := selectedIn(cfg, runOrder)
	for i, name := range order {
		if ctx.Err() != nil {
			failures = append(failures, ctx.Err())
			break
		}
		log.Info("bench: scenario", "name", name)
		t0 := time.Now()
		if err := r.run(ctx, name); err != nil {
			log.Error("bench: scenario failed", "name", name, "err", err)
			failures = append(failures, fmt.Errorf("%s: %w", name, err))
		}
		log.Info("bench: scenario done", "name", name, "took", time.Since(t0).Round(time.Second))
		if i+1 < len(order) {
			r.settle(ctx, name)
		}
	}
	res.deliveryFloor(runtime.NumCPU())
	res.Settings.TemporalStarts = st.TemporalStarts
	res.Machine.LoadAverageEnd = loadAverage()
	res.Settings.DurationSeconds = round(time.Since(began).Seconds())
	return res, errors.Join(failures...)
}

// selectedIn lists the selected scenarios in the given order.
func selectedIn(cfg Config, order []string) []string {
	var out []string
	for _, s := range order {
		if cfg.runs(s) {
			out = append(out, s)
		}
	}
	return out
}

// settle waits for the deliveries of scenario to finish before the next
// one; when they do not within the drain timeout, the backlog is noted
// and, with Isolate, thrown away with a fresh delivery side.
func (r *runner) settle(ctx context.Context, scenario string) {
	timeout := r.cfg.DrainTimeout
	if r.skipDrain {
		timeout, r.skipDrain = 0, false
	}
	d, err := r.st.drain(ctx, timeout)
	if err == nil {
		if d > 2*time.Second {
			r.log.Info("bench: deliveries drained", "after", scenario, "took", d.Round(100*time.Millisecond))
		}
		return
	}
	var backlog *BacklogError
	if !errors.As(err, &backlog) || !r.cfg.Isolate {
		r.note("after %s: %v", scenario, err)
		return
	}
	r.note("after %s: %v; restarted the delivery side (Temporal, dispatcher, worker) without them", scenario, err)
	if err := r.st.restartDelivery(ctx); err != nil {
		r.note("restarting the delivery side failed: %v", err)
	}
}

// runner runs scenarios on one stack.
type runner struct {
	cfg     Config
	st      *Stack
	log     *slog.Logger
	res     *Results
	pgbench *Pgbench
	cpu     map[string]*CPUUse
	// skipDrain says the scenario already waited for its backlog.
	skipDrain bool
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn("bench: " + msg)
	r.res.Notes = append(r.res.Notes, msg)
}

// run runs one scenario and stores its result, with its error if any.
func (r *runner) run(ctx context.Context, name string) error {
	var (
		common *Common
		err    error
	)
	errs0, busy0 := r.st.temporalErrors.Load(), r.st.sqliteBusy.Load()
	defer func() {
		common.CPU = r.cpu[name]
		common.TemporalErrors = r.st.temporalErrors.Load() - errs0
		common.SQLiteBusy = r.st.sqliteBusy.Load() - busy0
	}()
	switch name {
	case ScenarioRead:
		var x *ReadWriteResult
		x, err = r.read(ctx)
		r.res.Read, common = x, &x.Common
	case ScenarioWrite:
		var x *ReadWriteResult
		x, err = r.write(ctx)
		r.res.Write, common = x, &x.Common
	case ScenarioList:
		var x *ListResult
		x, err = r.list(ctx)
		r.res.List, common = x, &x.Common
	case ScenarioConcurrency:
		var x *ConcurrencyResult
		x, err = r.concurrency(ctx)
		r.res.Concurrency, common = x, &x.Common
	case ScenarioWebhookLatency:
		var x *WebhookResult
		x, err = r.webhookLatency(ctx)
		r.res.WebhookLatency, common = x, &x.Common
	case ScenarioWebhookThroughput:
		var x *ThroughputResult
		x, err = r.webhookThroughput(ctx)
		r.res.WebhookThroughput, common = x, &x.Common
	case ScenarioFanout:
		var x *FanoutResult
		x, err = r.fanout(ctx)
		r.res.Fanout, common = x, &x.Common
	default:
		return fmt.Errorf("unknown scenario %q", name)
	}
	if err != nil {
		common.Error = err.Error()
	}
	return err
}

// profile marks the start of scenario's measured phase: it takes a CPU
// reading and, when asked for, starts a CPU profile of the whole process.
// The function it returns ends both.
func (r *runner) profile(scenario string) func() {
	meter := r.st.startCPUMeter(context.Background())
	usage := func() { r.cpu[scenario] = meter.Stop(context.Background()) }
	stopAllocs := r.startAllocProfile(scenario)
	stopProfile := r.startProfile(scenario)
	return func() {
		stopProfile()
		stopAllocs()
		usage()
	}
}

// startAllocProfile notes the process's allocations so far, when asked
// for an allocation profile, and returns a function that writes what was
// allocated since. Go's allocation profile counts from the start of the
// process, so the phase's share is the difference of two snapshots.
func (r *runner) startAllocProfile(scenario string) func() {
	if r.cfg.MemProfile == "" {
		return func() {}
	}
	path := profilePath(r.cfg.MemProfile, scenario)
	before, err := allocSnapshot()
	if err != nil {
		r.note("allocation profile %s: %v", path, err)
		return func() {}
	}
	return func() {
		if err := writeAllocDelta(path, before); err != nil {
			r.note("allocation profile %s: %v", path, err)
			return
		}
		r.log.Info("bench: allocation profile", "scenario", scenario, "path", path)
	}
}

// allocSnapshot reads the allocation profile as of now (a collection
// first: the profile is updated at the end of each).
func allocSnapshot() (*profile.Profile, error) {
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("allocs").WriteTo(&buf, 0); err != nil {
		return nil, err
	}
	return profile.Parse(&buf)
}

// writeAllocDelta writes to path the allocations made since before.
func writeAllocDelta(path string, before *profile.Profile) error {
	after, err := allocSnapshot()
	if err != nil {
		return err
	}
	before.Scale(-1)
	delta, err := profile.Merge([]*profile.Profile{after, before})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := delta.Write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// startProfile starts a CPU profile for scenario when asked for.
func (r *runner) startProfile(scenario string) func() {
	if r.cfg.CPUProfile == "" {
		return func() {}
	}
	path := profilePath(r.cfg.CPUProfile, scenario)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.note("cpu profile %s: %v", path, err)
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		r.note("cpu profile %s: %v", path, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		r.note("cpu profile %s: %v", path, err)
		return func() {}
	}
	r.log.Info("bench: cpu profile", "scenario", scenario, "path", path)
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// profilePath is base with -scenario before its extension.
func profilePath(base, scenario string) string {
	ext := filepath.Ext(base)
	if ext == "" {
		return base + "-" + scenario + ".pprof"
	}
	return strings.TrimSuffix(base, ext) + "-" + scenario + ext
}

// machine describes this machine, from the runtime and /proc.
func machine() Machine {
	m := Machine{
		Cores:            runtime.NumCPU(),
		GOMAXPROCS:       runtime.GOMAXPROCS(0),
		GoVersion:        runtime.Version(),
		OS:               runtime.GOOS + "/" + runtime.GOARCH,
		Date:             time.Now().UTC().Format(time.RFC3339),
		LoadAverageStart: loadAverage(),
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.Atoi(strings.Fields(v)[0]); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	return m
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
