package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// newClient speaks HTTP/1.1 keep-alive with up to conns connections.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:  (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 5 * time.Minute, DisableCompression: true,
	}}
}

// load is vegeta's account of one attack.
type load struct{ vegeta.Metrics }

func (l *load) ok() int       { return int(math.Round(l.Success * float64(l.Requests))) }
func (l *load) errors() int   { return int(l.Requests) - l.ok() }
func (l *load) rps() float64  { return round(l.Throughput) }
func (l *load) secs() float64 { return round((l.Duration + l.Wait).Seconds()) }

// figures are the keys every HTTP load reports.
func (l *load) figures() map[string]any {
	return map[string]any{"requests": l.Requests, "errors": l.errors(), "seconds": l.secs(), "api_rps": l.rps(),
		"p50_ms": ms(l.Latencies.P50), "p99_ms": ms(l.Latencies.P99)}
}

func (l *load) err() error {
	if l.errors() == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests failed: %s", l.errors(), l.Requests, strings.Join(l.Errors[:min(3, len(l.Errors))], "; "))
}

// attack sends tr's requests paced by p for d (0: until p stops); maxWorkers
// 0 lets the pace, not a slow server, set the rate.
func attack(ctx context.Context, hc *http.Client, tr vegeta.Targeter, p vegeta.Pacer, d time.Duration, workers, maxWorkers int) *load {
	a := vegeta.NewAttacker(vegeta.Client(hc), vegeta.Workers(uint64(workers)), vegeta.MaxBody(0),
		vegeta.MaxWorkers(cmp.Or(uint64(maxWorkers), vegeta.DefaultMaxWorkers)))
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	l := &load{}
	for res := range a.Attack(tr, p, d, "") {
		l.Add(res)
	}
	l.Close()
	return l
}

// closedLoop: conns workers, each sending when its last request is answered.
func closedLoop(ctx context.Context, hc *http.Client, conns int, d time.Duration, tr vegeta.Targeter) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{}, d, conns, conns)
}

// openLoop: rate requests a second whether or not earlier ones are answered.
func openLoop(ctx context.Context, hc *http.Client, rate int, d time.Duration, tr vegeta.Targeter) *load {
	return attack(ctx, hc, tr, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, min(rate, 64), 0)
}

// hits paces n requests back to back, then stops.
type hits uint64

func (n hits) Pace(_ time.Duration, sent uint64) (time.Duration, bool) { return 0, sent >= uint64(n) }
func (n hits) Rate(time.Duration) float64                              { return 0 }

// count sends n requests from up to conns connections.
func count(ctx context.Context, hc *http.Client, n, conns int, tr vegeta.Targeter) error {
	return attack(ctx, hc, tr, hits(n), 0, conns, conns).err()
}

func (s *Stack) target(method, path, token string, body []byte) vegeta.Target {
	h := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return vegeta.Target{Method: method, URL: s.BaseURL + path, Body: body, Header: h}
}

func targets(ts ...vegeta.Target) vegeta.Targeter { return vegeta.NewStaticTargeter(ts...) }

// Receivers are webhook endpoints counting arrivals per webhook-id and
// endpoint, without checking signatures. Endpoint i is {server i mod n}/e/i.
type Receivers struct {
	servers []*http.Server
	bases   []string
	mu      sync.Mutex
	seen    map[string]bool
	total   int
	latency vegeta.Metrics // of each first arrival; End is the last arrival
}

func startReceivers(n int) (*Receivers, error) {
	r := &Receivers{}
	r.track()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, err
		}
		srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
		r.servers, r.bases = append(r.servers, srv), append(r.bases, "http://"+ln.Addr().String())
		go pprof.Do(context.Background(), pprof.Labels("part", "receiver"), func(context.Context) { _ = srv.Serve(ln) })
	}
	return r, nil
}

func (r *Receivers) URLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = r.bases[i%len(r.bases)] + "/e/" + strconv.Itoa(i)
	}
	return out
}

// Close stops the servers at once: a delivery still arriving is not counted.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// track counts afresh; the last run was drained, so arrivals are this run's.
func (r *Receivers) track() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen, r.total, r.latency = map[string]bool{}, 0, vegeta.Metrics{}
}

func (r *Receivers) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The event's created_at is its commit time: latency is commit to arrival.
	var ev struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.NewDecoder(req.Body).Decode(&ev); err != nil || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	now, key := time.Now(), req.Header.Get("webhook-id")+" "+req.URL.Path
	r.mu.Lock()
	if r.total++; !r.seen[key] {
		r.seen[key] = true
		r.latency.Add(&vegeta.Result{Code: http.StatusNoContent, Timestamp: ev.CreatedAt, Latency: now.Sub(ev.CreatedAt)})
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Delivery is what arrived; span runs from the first change, lastAfter from
// the last answer, to the last arrival.
type Delivery struct {
	Expected, Received, Lost, Duplicates, buyers int
	Latencies                                    vegeta.LatencyMetrics
	lastAt                                       time.Time
	span, lastAfter                              time.Duration
}

func (r *Receivers) result(expected int) Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency.Close()
	return Delivery{Expected: expected, Received: len(r.seen), Lost: max(expected-len(r.seen), 0),
		Duplicates: r.total - len(r.seen), Latencies: r.latency.Latencies, lastAt: r.latency.End}
}

// wait waits up to grace for expected deliveries and returns what arrived.
func (r *Receivers) wait(ctx context.Context, expected int, grace time.Duration) Delivery {
	until(ctx, grace, func() bool { return r.received() >= expected })
	return r.result(expected)
}

func (r *Receivers) received() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.seen) }
