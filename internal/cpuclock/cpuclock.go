// Package cpuclock reads how much CPU the whole machine, or one process,
// has spent, for benchmarks that must count the work of other processes
// too (PostgreSQL's backends, the kernel's share of loopback networking).
package cpuclock

import (
	"os"
	"strconv"
	"strings"
)

// clockTick is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat.
const clockTick = 100.0

// MachineBusy is the CPU time all cores have spent on anything but idling
// and waiting for I/O since boot, in seconds; 0 where /proc/stat cannot
// be read.
func MachineBusy() float64 {
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

// Process is the user and system CPU time process pid has spent, in
// seconds, from /proc/<pid>/stat; false when it cannot be read (the
// process has ended).
func Process(pid int) (float64, bool) {
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
