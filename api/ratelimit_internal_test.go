package api

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBucketsRetryAfterIsHonest(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b := newBuckets(RateLimit{PerSecond: 2, Burst: 4}, clock.now)
	for i := range 4 {
		if w := b.take("k"); w != 0 {
			t.Fatalf("request %d refused (wait %v) within the burst", i, w)
		}
	}
	wait := b.take("k")
	if wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("wait %v, want (0, 500ms] at 2 per second", wait)
	}
	// Refused requests spend nothing: asking again gives the same answer,
	// and after the wait the request goes through.
	if again := b.take("k"); again != wait {
		t.Fatalf("second refusal says %v, first said %v", again, wait)
	}
	clock.advance(wait)
	if w := b.take("k"); w != 0 {
		t.Fatalf("refused (wait %v) after waiting as told", w)
	}
}

func TestBucketsForgetIdleCallers(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b := newBuckets(RateLimit{PerSecond: 10, Burst: 20}, clock.now)
	for i := range 5000 {
		b.take(fmt.Sprintf("addr:%d", i))
	}
	if n := b.size(); n != 5000 {
		t.Fatalf("%d buckets, want 5000", n)
	}
	// A bucket idle for burst/rate (2 s) is full again: forgetting it
	// changes nothing, so the next sweep drops every idle one.
	clock.advance(2 * time.Second)
	b.take("fresh")
	if n := b.size(); n != 1 {
		t.Fatalf("%d buckets after the idle ones filled up, want 1", n)
	}
	// A caller that is still spending is not forgotten: forgetting it
	// would hand it a fresh burst.
	for range 20 {
		b.take("busy")
	}
	clock.advance(time.Second) // 10 tokens back
	for range 10 {
		if w := b.take("busy"); w != 0 {
			t.Fatalf("busy caller refused within its refill: %v", w)
		}
	}
	clock.advance(time.Second) // a sweep is due; 10 tokens back
	for range 10 {
		if w := b.take("busy"); w != 0 {
			t.Fatalf("busy caller refused within its refill: %v", w)
		}
	}
	if w := b.take("busy"); w == 0 {
		t.Fatal("a sweep forgot a caller that was still spending, and gave it a fresh burst")
	}
}

func TestBucketsAreBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	// Slow refill: nothing becomes idle during the test, so only the cap
	// bounds the map.
	b := newBuckets(RateLimit{PerSecond: 0.001, Burst: 1}, clock.now)
	for i := range maxBuckets + 1000 {
		b.take(fmt.Sprintf("addr:%d", i))
	}
	if n := b.size(); n > maxBuckets {
		t.Fatalf("%d buckets, want at most %d", n, maxBuckets)
	}
}

func TestClientNetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1234":            "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"[::ffff:192.0.2.1]:80":     "192.0.2.1",
		"[2001:db8:1:2::1]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":         "fe80::/64",
		"not an address":            "not an address",
	} {
		if got := clientNetwork(addr); got != want {
			t.Errorf("clientNetwork(%q) = %q, want %q", addr, got, want)
		}
	}
}
