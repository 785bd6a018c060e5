package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	r.tracker.Store(newTracker())
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

// URLs returns the URLs of endpoints 0..n-1 under path (/e/ or /floor/).
func (r *Receivers) URLs(path string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = r.bases[i%len(r.bases)] + path + strconv.Itoa(i)
	}
	return out
}

// Track makes t record what arrives from now on.
func (r *Receivers) Track(t *Tracker) { r.tracker.Store(t) }

// Close stops the servers at once: a delivery still arriving has no
// one to count it.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
	r.wg.Wait()
}

func (r *Receivers) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	endpoint, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/e/"))
	body, readErr := io.ReadAll(req.Body)
	switch {
	case strings.HasPrefix(req.URL.Path, "/floor/"): // the POST floor: read, answer, nothing else
	case err != nil || readErr != nil || req.Method != http.MethodPost:
		http.NotFound(w, req)
		return
	default:
		if err := r.tracker.Load().arrive(req.Header.Get("webhook-id"), endpoint, at, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// changeKey names one change of one deal: the deal after it, at its version.
func changeKey(dealID string, version int64) string {
	return dealID + "/" + strconv.FormatInt(version, 10)
}

// Tracker matches the changes made (the API's answers, by deal and
// version) with the deliveries that arrive (per webhook-id and endpoint).
type Tracker struct {
	mu       sync.Mutex
	sent     map[string]time.Time // change → when its answer arrived
	changes  map[string]string    // event ID → change, from its first body
	first    map[arrival]time.Time
	total    int
	firstReq time.Time
}

type arrival struct {
	eventID  string
	endpoint int
}

func newTracker() *Tracker {
	return &Tracker{sent: map[string]time.Time{}, changes: map[string]string{}, first: map[arrival]time.Time{}}
}

// arrive records a delivery. Only an event's first body is decoded: the
// receivers share the CPU with the service.
func (t *Tracker) arrive(eventID string, endpoint int, at time.Time, body []byte) error {
	t.mu.Lock()
	_, known := t.changes[eventID]
	t.mu.Unlock()
	change := ""
	if !known {
		var ev struct {
			Data struct {
				Deal struct {
					ID      string `json:"id"`
					Version int64  `json:"version"`
				} `json:"deal"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.Data.Deal.ID == "" {
			return fmt.Errorf("not a deal event: %v", err)
		}
		change = changeKey(ev.Data.Deal.ID, ev.Data.Deal.Version)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if change != "" {
		t.changes[eventID] = change
	}
	t.total++
	if k := (arrival{eventID, endpoint}); t.first[k].IsZero() {
		t.first[k] = at
	}
	return nil
}

// sentChange records the API's answer to a change, sent at started.
func (t *Tracker) sentChange(change string, started, answered time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstReq.IsZero() || started.Before(t.firstReq) {
		t.firstReq = started
	}
	if change != "" {
		t.sent[change] = answered
	}
}

// Delivery is the outcome of a webhook run.
type Delivery struct {
	Changes, Expected, Received, Lost int
	Duplicates                        int           // arrivals beyond the first of an (event, endpoint)
	Unexpected                        int           // arrivals of changes this run did not make
	Early                             int           // arrivals before the API's answer was read
	Span                              time.Duration // first change sent to last arrival
	LastAfter                         time.Duration // last answer to last arrival
}

// result compares what was sent with what arrived at endpoints endpoints.
func (t *Tracker) result(endpoints int) Delivery {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := Delivery{Changes: len(t.sent), Expected: len(t.sent) * endpoints, Duplicates: t.total - len(t.first)}
	var last, lastSent time.Time
	for _, at := range t.sent {
		lastSent = later(lastSent, at)
	}
	for k, at := range t.first {
		sent, ok := t.sent[t.changes[k.eventID]]
		if !ok {
			d.Unexpected++
			continue
		}
		d.Received++
		if at.Before(sent) {
			d.Early++
		}
		last = later(last, at)
	}
	d.Lost = d.Expected - d.Received
	if !last.IsZero() {
		d.Span, d.LastAfter = last.Sub(t.firstReq), last.Sub(lastSent)
	}
	return d
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// wait waits until every change has reached all endpoints, or grace has passed.
func (t *Tracker) wait(ctx context.Context, endpoints int, grace time.Duration) {
	for deadline := time.Now().Add(grace); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		if d := t.result(endpoints); d.Received >= d.Expected {
			return
		}
	}
}

// histogram is a cumulative Prometheus histogram: counts[i] observations
// at most bounds[i] seconds, the last bound +Inf.
type histogram struct {
	bounds []float64
	counts []uint64
}

const deliveryMetric = "dealcast_webhook_commit_to_delivery_seconds"

// deliveryHistogram reads the service's histogram of the time from a
// change's commit to a receiver's 2xx from its /metrics.
func (s *Stack) deliveryHistogram(ctx context.Context) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/metrics", nil)
	if err != nil {
		return histogram{}, err
	}
	req.Close = true // not one more connection for open_conns to count
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, fmt.Errorf("/metrics: %w", err)
	}
	var h histogram
	for _, m := range families[deliveryMetric].GetMetric() {
		ph := m.GetHistogram()
		if h.bounds == nil {
			for _, b := range ph.GetBucket() {
				h.bounds = append(h.bounds, b.GetUpperBound())
			}
			h.bounds = append(h.bounds, math.Inf(1))
			h.counts = make([]uint64, len(h.bounds))
		}
		for i, b := range ph.GetBucket() {
			h.counts[i] += b.GetCumulativeCount()
		}
		h.counts[len(h.counts)-1] += ph.GetSampleCount()
	}
	return h, nil
}

// since is what h recorded after before.
func (h histogram) since(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if len(before.counts) == len(h.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

func (h histogram) count() int {
	if len(h.counts) == 0 {
		return 0
	}
	return int(h.counts[len(h.counts)-1])
}

// quantileMs interpolates within the bucket holding the quantile, as
// Prometheus's histogram_quantile does; q = 1 gives the upper bound of
// the highest bucket in use.
func (h histogram) quantileMs(q float64) float64 {
	if h.count() == 0 {
		return 0
	}
	rank := q * float64(h.count())
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank && c > below {
			if math.IsInf(h.bounds[i], 1) {
				break
			}
			return round(1000 * (lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(c-below)))
		}
		lower, below = h.bounds[i], c
	}
	return round(1000 * lower)
}

// deliveredSince waits until the histogram has recorded want deliveries
// after before (the sender records just after the receiver's answer) and
// returns what it recorded.
func (s *Stack) deliveredSince(ctx context.Context, before histogram, want int) histogram {
	var h histogram
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		now, err := s.deliveryHistogram(ctx)
		if err != nil {
			s.log.Warn("bench: reading the delivery histogram", "err", err)
		}
		if h = now.since(before); h.count() >= want || time.Now().After(deadline) || ctx.Err() != nil {
			return h
		}
	}
}
