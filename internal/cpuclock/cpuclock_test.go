package cpuclock

import (
	"os"
	"testing"
	"time"
)

// TestMachineBusyCountsThisProcess: spinning until this process has used
// 200 ms of CPU (by its own clock, so other load on the machine cannot
// starve the check) adds at least most of that to the machine's busy time
// (ticks are 10 ms).
func TestMachineBusyCountsThisProcess(t *testing.T) {
	before, self := MachineBusy(), processSelf(t)
	if before <= 0 {
		t.Fatalf("MachineBusy() = %v before any work; /proc/stat unreadable?", before)
	}
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for processSelf(t)-self < 0.2 {
		if time.Now().After(deadline) {
			t.Fatalf("this process's CPU time grew %.2f s in 20 s of spinning, want 0.2", processSelf(t)-self)
		}
		for range 100000 {
			n++
		}
	}
	if spent := MachineBusy() - before; spent < 0.15 {
		t.Fatalf("200 ms of this process's CPU (%d loops) added %.2f s of busy time, want at least 0.15", n, spent)
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
