package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// CPUUse is where the CPU went during a measured phase: this process
// (service, embedded Temporal, load generator and receivers together), the
// PostgreSQL backends of the bench database, and the whole machine.
type CPUUse struct {
	WallS        float64 `json:"wall_s"`
	ProcessS     float64 `json:"process_s"`
	PostgresS    float64 `json:"postgres_s"`
	MachineBusyS float64 `json:"machine_busy_s"`
	// OtherS is the rest of the machine: other work, the kernel's share of
	// loopback networking, pgbench's clients.
	OtherS    float64 `json:"other_s"`
	CapacityS float64 `json:"capacity_s"` // wall × cores
}

var procFS, procErr = procfs.NewDefaultFS()

// machineBusy is the CPU time all cores have spent on anything but idling
// and waiting for I/O since boot, in seconds (guest time is within user).
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

// processCPU is the user and system CPU time of process pid, in seconds;
// false once it has ended.
func processCPU(pid int) (float64, bool) {
	if procErr != nil {
		return 0, false
	}
	p, err := procFS.Proc(pid)
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	if err != nil {
		return 0, false
	}
	return st.CPUTime(), true
}

func selfCPU() float64 {
	t, _ := processCPU(os.Getpid())
	return t
}

// cpuMeter follows the PostgreSQL backends while a phase runs, sampling
// them every half second, so a backend that ends within the phase still
// counts up to its last sample.
type cpuMeter struct {
	s                  *Stack
	at                 time.Time
	process, busy      float64
	mu                 sync.Mutex
	first, last        map[int]float64 // backend CPU when first and last seen
	stopping, finished chan struct{}
}

func (s *Stack) startCPUMeter(ctx context.Context) *cpuMeter {
	m := &cpuMeter{s: s, at: time.Now(), process: selfCPU(), busy: machineBusy(),
		first: map[int]float64{}, last: map[int]float64{}, stopping: make(chan struct{}), finished: make(chan struct{})}
	m.sample(ctx, true)
	go func() {
		defer close(m.finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopping:
				return
			case <-t.C:
				m.sample(ctx, false)
			}
		}
	}()
	return m
}

// sample reads the backends' CPU; one first seen after the start began
// within the phase and counts from zero.
func (m *cpuMeter) sample(ctx context.Context, start bool) {
	rows, err := m.s.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return
	}
	defer rows.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			continue
		}
		if t, ok := processCPU(pid); ok {
			if _, seen := m.first[pid]; !seen {
				m.first[pid] = 0
				if start {
					m.first[pid] = t
				}
			}
			m.last[pid] = t
		}
	}
}

func (m *cpuMeter) stop(ctx context.Context) *CPUUse {
	close(m.stopping)
	<-m.finished
	m.sample(ctx, false)
	u := &CPUUse{WallS: time.Since(m.at).Seconds(), ProcessS: selfCPU() - m.process, MachineBusyS: machineBusy() - m.busy}
	for pid, t := range m.last {
		u.PostgresS += t - m.first[pid]
	}
	u.CapacityS = u.WallS * float64(runtime.NumCPU())
	u.OtherS = max(u.MachineBusyS-u.ProcessS-u.PostgresS, 0)
	for _, p := range []*float64{&u.WallS, &u.ProcessS, &u.PostgresS, &u.MachineBusyS, &u.OtherS, &u.CapacityS} {
		*p = round(*p)
	}
	return u
}

// idleRates are the CPU seconds per second the machine and this process
// spend over d while the bench sends nothing: the background a floor
// measured next takes out.
func idleRates(d time.Duration) (machine, process float64) {
	busy, proc, from := machineBusy(), selfCPU(), time.Now()
	time.Sleep(d)
	s := time.Since(from).Seconds()
	return (machineBusy() - busy) / s, (selfCPU() - proc) / s
}

// lessIdle takes the idle background out of a gross CPU figure, unless
// the estimate would take more than half of it: then it swamps the
// measurement (a tiny run's busy "idle" second) and the gross figure, an
// upper bound, is kept.
func lessIdle(gross, idle float64) float64 {
	if idle > 0 && idle < gross/2 {
		return gross - idle
	}
	return gross
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
