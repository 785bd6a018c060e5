package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// newClient speaks HTTP/1.1 keep-alive over loopback with up to conns
// connections, as an outside client would.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 5 * time.Minute, DisableCompression: true,
	}}
}

// load is the outcome of one attack.
type load struct {
	vegeta.Metrics
	elapsed time.Duration // to the last response
	errors  int
}

func (l *load) ok() int       { return int(l.Requests) - l.errors }
func (l *load) rps() float64  { return round(perSecond(l.ok(), l.elapsed)) }
func (l *load) secs() float64 { return round(l.elapsed.Seconds()) }

func (l *load) err() error {
	if l.errors == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests failed: %s", l.errors, l.Requests, strings.Join(l.Errors[:min(3, len(l.Errors))], "; "))
}

// attack sends tr's requests paced by p for d (0: until p stops) from
// workers goroutines, at most maxWorkers (0: as many as the pace needs,
// so a slow server cannot hold requests back). each, if set, sees every
// result with its body; otherwise bodies are read and dropped.
func attack(ctx context.Context, hc *http.Client, tr vegeta.Targeter, p vegeta.Pacer, d time.Duration, workers, maxWorkers int, each func(*vegeta.Result)) *load {
	opts := []func(*vegeta.Attacker){vegeta.Client(hc), vegeta.Workers(uint64(workers)), vegeta.MaxBody(0)}
	if maxWorkers > 0 {
		opts = append(opts, vegeta.MaxWorkers(uint64(maxWorkers)))
	}
	if each != nil {
		opts = append(opts, vegeta.MaxBody(-1))
	}
	a := vegeta.NewAttacker(opts...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			a.Stop()
		case <-done:
		}
	}()
	l := &load{}
	start := time.Now()
	for res := range a.Attack(tr, p, d, "") {
		l.Add(res)
		if res.Error != "" {
			l.errors++
		}
		if each != nil {
			each(res)
		}
	}
	l.elapsed = time.Since(start)
	l.Close()
	return l
}

// closedLoop: conns workers, each sending its next request when the last
// one is answered.
func closedLoop(ctx context.Context, hc *http.Client, conns int, d time.Duration, tr vegeta.Targeter) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{}, d, conns, conns, nil)
}

// openLoop: rate requests a second whether or not earlier ones are answered.
func openLoop(ctx context.Context, hc *http.Client, rate int, d time.Duration, tr vegeta.Targeter, each func(*vegeta.Result)) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, min(rate, 64), 0, each)
}

// burstPacer releases n hits at once every interval, bursts times
// (n hits back to back for a zero interval): a change's deliveries leave
// together, and a warm-up sends a fixed number of requests.
type burstPacer struct {
	n, bursts int
	every     time.Duration
}

func (b burstPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= uint64(b.n*b.bursts) {
		return 0, true
	}
	return max(b.every*time.Duration(hits/uint64(b.n))-elapsed, 0), false
}

func (b burstPacer) Rate(time.Duration) float64 {
	if b.every <= 0 {
		return 0
	}
	return float64(b.n) / b.every.Seconds()
}

// count sends n requests from up to conns connections.
func count(ctx context.Context, hc *http.Client, n, conns int, tr vegeta.Targeter) error {
	return attack(ctx, hc, tr, burstPacer{n: n, bursts: 1}, 0, conns, conns, nil).err()
}

// target is one API request.
func (s *Stack) target(method, path, token string, body []byte) vegeta.Target {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return vegeta.Target{Method: method, URL: s.BaseURL + path, Body: body, Header: h}
}

// targets cycles through fixed requests.
func targets(ts ...vegeta.Target) vegeta.Targeter { return vegeta.NewStaticTargeter(ts...) }

// openConnections opens n connections of hc at once: n requests that the
// server holds for half a second each need a connection of their own,
// which then stays open, idle.
func (s *Stack) openConnections(ctx context.Context, hc *http.Client, n int) error {
	return count(ctx, hc, n, n, targets(s.target(http.MethodGet, "/bench/hold?ms=500", "", nil)))
}
