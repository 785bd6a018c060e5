package delivery

import (
	"testing"
	"time"
)

// Under a load that fills every batch the starter never asks the window
// for its count; adding must forget old starts all the same.
func TestRateWindowKeepsOnlyTheLastSecond(t *testing.T) {
	var w rateWindow
	at := time.Unix(0, 0)
	for i := range 1000 {
		w.add(at.Add(time.Duration(i)*10*time.Millisecond), MaxBatch)
	}
	if n := len(w.starts); n != 101 {
		t.Fatalf("the window holds %d starts after 10 s of one every 10 ms, want the last second's 101", n)
	}
	if got := w.count(at.Add(9990 * time.Millisecond)); got != 101*MaxBatch {
		t.Errorf("count %d, want %d", got, 101*MaxBatch)
	}
	if got := w.count(at.Add(20 * time.Second)); got != 0 {
		t.Errorf("count %d after a quiet 10 s, want 0", got)
	}
}
