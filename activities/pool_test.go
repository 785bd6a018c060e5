package activities

import (
	"sync"
	"testing"
	"time"
)

// TestGoPoolReusesIdleGoroutines: functions run one after another share a
// goroutine; one that blocks does not hold back the next; goroutines idle
// for longer than the pool's idle time end.
func TestGoPoolReusesIdleGoroutines(t *testing.T) {
	p := newGoPool(100 * time.Millisecond)
	done := make(chan struct{})
	for range 20 {
		p.Go(func() { done <- struct{}{} })
		<-done
		time.Sleep(20 * time.Millisecond) // back to waiting for work
	}
	// The first started one goroutine; later ones may start another if
	// they came before it was back (a loaded machine), but not one each.
	if n := p.started.Load(); n > 10 {
		t.Fatalf("20 functions run one after another started %d goroutines, want reuse", n)
	}

	// A function that blocks does not hold back the next.
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	p.Go(func() { defer wg.Done(); <-release })
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a function waited behind a blocked one")
	}
	close(release)
	wg.Wait()

	// Idle goroutines end: after the idle time a new function starts one.
	time.Sleep(time.Second)
	before := p.started.Load()
	p.Go(func() { done <- struct{}{} })
	<-done
	if p.started.Load() != before+1 {
		t.Fatalf("after the idle time no new goroutine was started (%d, then %d): idle ones were kept", before, p.started.Load())
	}
}
