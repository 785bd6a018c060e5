package cpuclock

import (
	"os"
	"testing"
	"time"
)

// TestMachineBusyCountsThisProcess: spinning for 200 ms adds at least most
// of that to the machine's busy time and to this process's (ticks are 10 ms).
func TestMachineBusyCountsThisProcess(t *testing.T) {
	before, self := MachineBusy(), processSelf(t)
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
	if spent := processSelf(t) - self; spent < 0.15 {
		t.Fatalf("a 200 ms spin added %.2f s to this process's CPU time, want at least 0.15", spent)
	}
	if _, ok := Process(-1); ok {
		t.Fatal("Process(-1) read a process")
	}
}

func processSelf(t *testing.T) float64 {
	t.Helper()
	s, ok := Process(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process's CPU time")
	}
	return s
}
