package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Receivers are buyers' webhook endpoints: HTTP servers on loopback that
// note each arrival and answer 204 at once, without checking signatures
// (that is the receiver's CPU, not the service's). Endpoint i is
// {server i mod n}/e/i.
type Receivers struct {
	servers []*http.Server
	bases   []string
	wg      sync.WaitGroup
	tracker atomic.Pointer[Tracker]
}

func startReceivers(n int) (*Receivers, error) {
	r := &Receivers{}
	r.tracker.Store(&Tracker{})
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, err
		}
		srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
		r.servers = append(r.servers, srv)
		r.bases = append(r.bases, "http://"+ln.Addr().String())
		labelled(&r.wg, "receiver", func() { _ = srv.Serve(ln) })
	}
	return r, nil
}

// URLs returns the URLs of endpoints 0..n-1.
func (r *Receivers) URLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = r.bases[i%len(r.bases)] + "/e/" + strconv.Itoa(i)
	}
	return out
}

// Close stops the servers at once: a delivery still arriving has no one
// to count it.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
	r.wg.Wait()
}

func (r *Receivers) serve(w http.ResponseWriter, req *http.Request) {
	endpoint, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/e/"))
	if _, readErr := io.Copy(io.Discard, req.Body); err != nil || readErr != nil || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	r.tracker.Load().arrive(arrival{req.Header.Get("webhook-id"), endpoint})
	w.WriteHeader(http.StatusNoContent)
}

// Tracker counts the deliveries that arrive, per webhook-id and endpoint.
// Each change of a run makes one event, and the previous run's deliveries
// were drained, so every event arriving is one of the run's changes.
type Tracker struct {
	mu      sync.Mutex
	seen    map[arrival]bool
	total   int
	lastAt  time.Time
	changes int
}

type arrival struct {
	eventID  string
	endpoint int
}

func (t *Tracker) arrive(a arrival) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[arrival]bool{}
	}
	t.total++
	if !t.seen[a] {
		t.seen[a], t.lastAt = true, time.Now()
	}
}

// Delivery is the outcome of a webhook run.
type Delivery struct {
	Changes, Expected, Received, Lost int
	Duplicates                        int // arrivals beyond the first of an (event, endpoint)
	lastAt                            time.Time
}

// result compares the changes made with what arrived at endpoints endpoints.
func (t *Tracker) result(endpoints int) Delivery {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := Delivery{Changes: t.changes, Expected: t.changes * endpoints, Received: len(t.seen), Duplicates: t.total - len(t.seen), lastAt: t.lastAt}
	d.Lost = max(d.Expected-d.Received, 0)
	return d
}

// wait waits until every change has reached all endpoints, or grace has passed.
func (t *Tracker) wait(ctx context.Context, endpoints int, grace time.Duration) {
	for deadline := time.Now().Add(grace); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		if d := t.result(endpoints); d.Received >= d.Expected {
			return
		}
	}
}
