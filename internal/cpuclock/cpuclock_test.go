package cpuclock

import (
	"testing"
	"time"
)

// TestMachineBusyCountsThisProcess: spinning for 200 ms adds at least most
// of that to the machine's busy time (ticks are 10 ms).
func TestMachineBusyCountsThisProcess(t *testing.T) {
	before := MachineBusy()
	if before <= 0 {
		t.Fatalf("MachineBusy() = %v before any work; /proc/stat unreadable?", before)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		n++
	}
	if spent := MachineBusy() - before; spent < 0.15 {
		t.Fatalf("a 200 ms spin (%d loops) added %.2f s of busy time, want at least 0.15", n, spent)
	}
}
