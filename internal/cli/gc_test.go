package cli

import (
	"runtime/debug"
	"testing"
)

func TestGCDefault(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	// GOGC in the environment wins: the runtime's own reading stays.
	if UseGCDefault(func(string) (string, bool) { return "150", true }) {
		t.Error("applied the default although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent with GOGC set = %d, want it untouched (100)", got)
	}

	if !UseGCDefault(func(string) (string, bool) { return "", false }) {
		t.Error("did not apply the default without GOGC")
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GC percent without GOGC = %d, want %d", got, DefaultGCPercent)
	}
}
