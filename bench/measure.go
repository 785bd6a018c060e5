package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// CPUUse is where the CPU went during a measured phase: this process
// (service, embedded Temporal, load generator and receivers together), the
// PostgreSQL backends of the bench database, and the whole machine; other_s
// is the rest (other work, the kernel's loopback networking).
type CPUUse struct {
	WallS        float64 `json:"wall_s"`
	ProcessS     float64 `json:"process_s"`
	PostgresS    float64 `json:"postgres_s"`
	MachineBusyS float64 `json:"machine_busy_s"`
	OtherS       float64 `json:"other_s"`
	CapacityS    float64 `json:"capacity_s"` // wall × cores
}

var procFS, procErr = procfs.NewDefaultFS()

// machineBusy is the CPU time all cores have spent on anything but idling
// and waiting for I/O since boot, in seconds.
func machineBusy() float64 {
	if procErr != nil {
		return 0
	}
	s, err := procFS.Stat()
	if err != nil {
		return 0
	}
	c := s.CPUTotal
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// processCPU is the user and system CPU time of process pid, in seconds.
func processCPU(pid int) (float64, bool) {
	if procErr != nil {
		return 0, false
	}
	p, err := procFS.Proc(pid)
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	return st.CPUTime(), err == nil
}

func selfCPU() float64 { t, _ := processCPU(os.Getpid()); return t }

// cpuMeter reads the CPU at the start and end of a phase. The service's
// pool keeps its backends for the whole phase; one that ends within it is
// missed.
type cpuMeter struct {
	s             *Stack
	at            time.Time
	process, busy float64
	backends      map[int]float64
}

func (s *Stack) startCPUMeter(ctx context.Context) *cpuMeter {
	return &cpuMeter{s: s, at: time.Now(), process: selfCPU(), busy: machineBusy(), backends: s.backendCPU(ctx)}
}

// backendCPU is the CPU time of each backend serving the bench database.
func (s *Stack) backendCPU(ctx context.Context) map[int]float64 {
	out := map[int]float64{}
	rows, err := s.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return out
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int])
	for _, pid := range pids {
		if t, ok := processCPU(pid); ok {
			out[pid] = t
		}
	}
	return out
}

func (m *cpuMeter) stop(ctx context.Context) *CPUUse {
	wall, proc, busy, pg := time.Since(m.at).Seconds(), selfCPU()-m.process, machineBusy()-m.busy, 0.0
	for pid, t := range m.s.backendCPU(ctx) {
		pg += t - m.backends[pid]
	}
	return &CPUUse{WallS: round(wall), ProcessS: round(proc), PostgresS: round(pg), MachineBusyS: round(busy),
		OtherS: round(max(busy-proc-pg, 0)), CapacityS: round(wall * float64(runtime.NumCPU()))}
}

// machine describes this machine.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, Date: time.Now().UTC().Format(time.RFC3339), LoadAverageStart: loadAverage()}
	if procErr != nil {
		return m
	}
	if mi, err := procFS.Meminfo(); err == nil && mi.MemTotal != nil {
		m.MemoryMB = int(*mi.MemTotal / 1024)
	}
	if ci, err := procFS.CPUInfo(); err == nil && len(ci) > 0 {
		m.CPU = ci[0].ModelName
	}
	return m
}

func loadAverage() string {
	if procErr != nil {
		return ""
	}
	l, err := procFS.LoadAvg()
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
}

// histogram is a cumulative Prometheus histogram: counts[i] observations
// at most bounds[i] seconds, the last bound +Inf.
type histogram struct {
	bounds []float64
	counts []uint64
}

// deliveryHistogram reads the service's own histogram of the time from a
// change's commit to a receiver's 2xx from its /metrics.
func (s *Stack) deliveryHistogram(ctx context.Context) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/metrics", nil)
	if err != nil {
		return histogram{}, err
	}
	req.Close = true // not one more connection for open_conns to count
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, fmt.Errorf("/metrics: %w", err)
	}
	var h histogram
	for _, m := range families["dealcast_webhook_commit_to_delivery_seconds"].GetMetric() {
		ph := m.GetHistogram()
		if h.bounds == nil {
			for _, b := range ph.GetBucket() {
				h.bounds = append(h.bounds, b.GetUpperBound())
			}
			h.bounds = append(h.bounds, math.Inf(1))
			h.counts = make([]uint64, len(h.bounds))
		}
		for i, b := range ph.GetBucket() {
			h.counts[i] += b.GetCumulativeCount()
		}
		h.counts[len(h.counts)-1] += ph.GetSampleCount()
	}
	return h, nil
}

// since is what h recorded after before.
func (h histogram) since(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if len(before.counts) == len(h.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

func (h histogram) count() int {
	if len(h.counts) == 0 {
		return 0
	}
	return int(h.counts[len(h.counts)-1])
}

// quantileMs interpolates within the bucket holding the quantile, as
// Prometheus's histogram_quantile does; q = 1 gives the upper bound of
// the highest bucket in use.
func (h histogram) quantileMs(q float64) float64 {
	if h.count() == 0 {
		return 0
	}
	rank := q * float64(h.count())
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank && c > below {
			if math.IsInf(h.bounds[i], 1) {
				break
			}
			return round(1000 * (lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(c-below)))
		}
		lower, below = h.bounds[i], c
	}
	return round(1000 * lower)
}

// deliveredSince waits until the histogram has recorded want deliveries
// after before (the sender records just after the receiver's answer) and
// returns what it recorded.
func (s *Stack) deliveredSince(ctx context.Context, before histogram, want int) histogram {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		now, err := s.deliveryHistogram(ctx)
		if err != nil {
			s.log.Warn("bench: reading the delivery histogram", "err", err)
		}
		if h := now.since(before); h.count() >= want || time.Now().After(deadline) || ctx.Err() != nil {
			return h
		}
	}
}
