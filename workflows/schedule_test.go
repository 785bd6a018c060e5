package workflows

import (
	"testing"
	"time"
)

func TestRetryDelayIsDeterministicAndJittered(t *testing.T) {
	for n := 1; n <= Retries; n++ {
		a, b := RetryDelay("evt_a", n), RetryDelay("evt_a", n)
		if a != b {
			t.Fatalf("round %d: %v then %v for the same event", n, a, b)
		}
		base := retryDelays[n-1]
		if a < base || a > base+base/5 {
			t.Fatalf("round %d: %v outside [%v, %v]", n, a, base, base+base/5)
		}
	}
	same := 0
	for n := 1; n <= Retries; n++ {
		if RetryDelay("evt_a", n) == RetryDelay("evt_b", n) {
			same++
		}
	}
	if same == Retries {
		t.Fatal("two events get the same delays: no jitter")
	}
	if TotalRetryWindow() < 24*time.Hour {
		t.Fatalf("schedule spans %v, want >= 24h", TotalRetryWindow())
	}
}
