package activities

import (
	"sync/atomic"
	"time"
)

// goPool runs functions on goroutines it keeps for reuse. A new goroutine
// starts with the runtime's smallest stack and grows it, copy by copy, to
// the depth of an HTTP request on every delivery; a kept goroutine keeps
// its grown stack (until the collector finds it mostly unused).
//
// Go never makes a function wait: it hands it to an idle goroutine or
// starts a new one, so a function behaves exactly as with the go statement
// and a slow receiver holds no one else's delivery.
type goPool struct {
	work chan func() // unbuffered: a send succeeds only into an idle goroutine
	idle time.Duration
	// started counts the goroutines started, for tests.
	started atomic.Int64
}

func newGoPool(idle time.Duration) *goPool {
	return &goPool{work: make(chan func()), idle: idle}
}

// Go runs f on an idle goroutine of the pool, or on a new one.
func (p *goPool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		p.started.Add(1)
		go p.run(f)
	}
}

// run runs f, then whatever it is handed next, until it has been idle for
// p.idle.
func (p *goPool) run(f func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		f = nil // not kept alive while idle
		t.Reset(p.idle)
		select {
		case f = <-p.work:
		case <-t.C:
			return
		}
	}
}

// senders runs the delivery attempts of every round in this process.
var senders = newGoPool(time.Minute)
