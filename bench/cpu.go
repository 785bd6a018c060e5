package bench

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/dealcast/dealcast/internal/cpuclock"
)

// CPUUse is where the CPU went during a scenario's measured phase: this
// process (service, embedded Temporal, load generator and receivers
// together; a profile splits it), the PostgreSQL backends serving the
// bench database, and the whole machine, which may be shared.
type CPUUse struct {
	WallS        float64 `json:"wall_s"`
	ProcessS     float64 `json:"process_s"`
	PostgresS    float64 `json:"postgres_s"`
	MachineBusyS float64 `json:"machine_busy_s"`
	// OtherS is what the machine spent beyond this process and its
	// PostgreSQL backends: other work on a shared machine, the kernel's
	// share of loopback networking, pgbench's own clients when it runs.
	OtherS float64 `json:"other_s"`
	// Capacity is wall time × cores: the most that could have been spent.
	CapacityS float64 `json:"capacity_s"`
}

// cpuSnapshot is a reading of the three clocks.
type cpuSnapshot struct {
	at       time.Time
	process  float64
	backends map[int]float64
	busy     float64
}

// processCPU is this process's CPU time so far, in seconds (user and system).
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func (s *Stack) cpuSnapshot(ctx context.Context) cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), backends: map[int]float64{}}
	snap.process = processCPU()
	rows, err := s.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err == nil {
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				if t, ok := cpuclock.Process(pid); ok {
					snap.backends[pid] = t
				}
			}
		}
		rows.Close()
	}
	snap.busy = cpuclock.MachineBusy()
	return snap
}

// cpuMeter follows the CPU of the PostgreSQL backends while a phase
// runs: it samples them every half second, so a backend that starts and
// ends within the phase (a connection closed by a cancelled query) still
// counts up to its last sample.
type cpuMeter struct {
	s     *Stack
	start cpuSnapshot
	mu    sync.Mutex
	first map[int]float64 // ticks when first seen (0 for backends born during the phase)
	last  map[int]float64
	stop  chan struct{}
	done  chan struct{}
}

func (s *Stack) startCPUMeter(ctx context.Context) *cpuMeter {
	m := &cpuMeter{s: s, start: s.cpuSnapshot(ctx), first: map[int]float64{}, last: map[int]float64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for pid, t := range m.start.backends {
		m.first[pid], m.last[pid] = t, t
	}
	go func() {
		defer close(m.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.sample(s.cpuSnapshot(ctx).backends)
			}
		}
	}()
	return m
}

func (m *cpuMeter) sample(backends map[int]float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, t := range backends {
		if _, ok := m.first[pid]; !ok {
			m.first[pid] = 0
		}
		m.last[pid] = t
	}
}

// Stop ends the measurement and returns the CPU spent since the start.
func (m *cpuMeter) Stop(ctx context.Context) *CPUUse {
	close(m.stop)
	<-m.done
	end := m.s.cpuSnapshot(ctx)
	m.sample(end.backends)
	u := &CPUUse{
		WallS:        end.at.Sub(m.start.at).Seconds(),
		ProcessS:     end.process - m.start.process,
		MachineBusyS: end.busy - m.start.busy,
	}
	m.mu.Lock()
	for pid, t := range m.last {
		u.PostgresS += t - m.first[pid]
	}
	m.mu.Unlock()
	u.CapacityS = u.WallS * float64(runtime.NumCPU())
	u.OtherS = max(u.MachineBusyS-u.ProcessS-u.PostgresS, 0)
	for _, p := range []*float64{&u.WallS, &u.ProcessS, &u.PostgresS, &u.MachineBusyS, &u.OtherS, &u.CapacityS} {
		*p = round(*p)
	}
	return u
}

// idleRates measures, for d, the CPU seconds per second the machine and
// this process spend while the bench sends nothing: the background (pollers,
// timers, PostgreSQL's own work) that a floor measured next takes out.
func idleRates(d time.Duration) (machine, process float64) {
	busy, proc, from := cpuclock.MachineBusy(), processCPU(), time.Now()
	time.Sleep(d)
	s := time.Since(from).Seconds()
	return (cpuclock.MachineBusy() - busy) / s, (processCPU() - proc) / s
}
