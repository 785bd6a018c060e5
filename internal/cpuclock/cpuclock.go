// Package cpuclock reads how much CPU the whole machine has spent, for
// benchmarks that must count the work of other processes too (PostgreSQL's
// backends, the kernel's share of loopback networking).
package cpuclock

import (
	"os"
	"strconv"
	"strings"
)

// clockTick is USER_HZ, the unit of /proc/stat.
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
