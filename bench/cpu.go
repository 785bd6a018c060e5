package bench

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// clockTick is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat.
const clockTick = 100.0

func (s *Stack) cpuSnapshot(ctx context.Context) cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), backends: map[int]float64{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		snap.process = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	rows, err := s.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err == nil {
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				if t, ok := processTicks(pid); ok {
					snap.backends[pid] = t
				}
			}
		}
		rows.Close()
	}
	snap.busy = machineBusy()
	return snap
}

// cpuSince is the CPU spent from start to now. Backends that appeared in
// between count from zero; those that went away are missed.
func (s *Stack) cpuSince(ctx context.Context, start cpuSnapshot) *CPUUse {
	end := s.cpuSnapshot(ctx)
	u := &CPUUse{
		WallS:        end.at.Sub(start.at).Seconds(),
		ProcessS:     end.process - start.process,
		MachineBusyS: end.busy - start.busy,
	}
	for pid, t := range end.backends {
		u.PostgresS += t - start.backends[pid]
	}
	u.CapacityS = u.WallS * float64(runtime.NumCPU())
	u.OtherS = max(u.MachineBusyS-u.ProcessS-u.PostgresS, 0)
	for _, p := range []*float64{&u.WallS, &u.ProcessS, &u.PostgresS, &u.MachineBusyS, &u.OtherS, &u.CapacityS} {
		*p = round(*p)
	}
	return u
}

// processTicks is a process's user+system time in ticks, from /proc.
func processTicks(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (state is field 3).
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(f[11], 64) // utime, field 14
	st, err2 := strconv.ParseFloat(f[12], 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / clockTick, true
}

// machineBusy is the CPU time all cores spent not idle, from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	busy := 0.0
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		busy += x
	}
	return busy / clockTick
}
