package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// changer changes deals through the API, each call a new price on the
// next deal in turn, so every call makes one deal.updated event.
type changer struct {
	st     *Stack
	hc     *http.Client
	token  string
	deals  []string
	prices []atomic.Int64
	next   atomic.Int64
}

func (ch *changer) target(t *vegeta.Target) error {
	k := int(ch.next.Add(1)-1) % len(ch.deals)
	p := 2000 + ch.prices[k].Add(1)
	body := fmt.Appendf(nil, `{"total_price":%d,"items":[{"id":"i1","name":"Item","price":%d}]}`, p, p)
	*t = ch.st.target(http.MethodPatch, "/v1/deals/"+ch.deals[k], ch.token, body)
	return nil
}

// changes sends changes paced by p for d and tells tr of each answer.
func (ch *changer) changes(ctx context.Context, tr *Tracker, p vegeta.Pacer, d time.Duration) *load {
	return attack(ctx, ch.hc, ch.target, p, d, 10, 0, func(res *vegeta.Result) {
		var out struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		}
		change := ""
		if res.Error == "" && json.Unmarshal(res.Body, &out) == nil {
			change = changeKey(out.ID, out.Version)
		}
		tr.sentChange(change, res.Timestamp, res.End())
	})
}

// webhookStack starts receivers and seeds one seller whose buyers each have
// an endpoint on them, with deals to change; warm sends one change per
// deal and waits for its deliveries, so connections are open and caches
// warm. done undoes it all.
func (r *runner) webhookStack(ctx context.Context, buyers, deals, receivers int, warm bool) (_ *Receivers, _ *changer, done func(), err error) {
	recv, err := startReceivers(receivers)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			recv.Close()
		}
	}()
	sd, err := r.st.seed(ctx, 1, buyers, deals, recv.URLs("/e/", buyers))
	if err != nil {
		return nil, nil, nil, err
	}
	token, err := r.st.token(store.RoleSeller, sd.sellers[0])
	if err != nil {
		return nil, nil, nil, err
	}
	ch := &changer{st: r.st, hc: newClient(256), token: token, deals: sd.deals, prices: make([]atomic.Int64, deals)}
	done = func() { ch.hc.CloseIdleConnections(); recv.Close() }
	if !warm {
		return recv, ch, done, nil
	}
	tr := newTracker()
	recv.Track(tr)
	if err := ch.changes(ctx, tr, burstPacer{n: 1, bursts: deals}, 0).err(); err != nil {
		return nil, nil, nil, fmt.Errorf("warm-up: %w", err)
	}
	tr.wait(ctx, buyers, r.cfg.Grace)
	if d := tr.result(buyers); d.Lost > 0 {
		return nil, nil, nil, fmt.Errorf("warm-up: %d of %d deliveries did not arrive within %v", d.Lost, d.Expected, r.cfg.Grace)
	}
	if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
		r.note("webhook warm-up: %v", err)
	}
	return recv, ch, done, nil
}

// webhookLatency: a steady change rate, each change delivered to every
// buyer; latency is the service's own, from commit to the receiver's 2xx.
func (r *runner) webhookLatency(ctx context.Context) (*Common, error) {
	c := r.cfg.WebhookLatency
	res := &WebhookResult{Common: Common{Goal: "p50_ms <= 25, p99_ms <= 100, lost = 0"}, ChangeRate: c.Rate, Buyers: c.Buyers}
	r.res.WebhookLatency = res
	recv, ch, done, err := r.webhookStack(ctx, c.Buyers, c.Deals, c.Buyers, true)
	if err != nil {
		return &res.Common, err
	}
	defer done()
	tr := newTracker()
	recv.Track(tr)
	before, err := r.st.deliveryHistogram(ctx)
	if err != nil {
		return &res.Common, err
	}
	stop := r.measure(ctx, "webhook_latency", &res.Common)
	l := ch.changes(ctx, tr, vegeta.ConstantPacer{Freq: c.Rate, Per: time.Second}, r.cfg.duration())
	tr.wait(ctx, c.Buyers, r.cfg.Grace)
	stop()
	d := tr.result(c.Buyers)
	res.latencyOf(r.st.deliveredSince(ctx, before, d.Received))
	res.Changes, res.ChangeErrors, res.Expected, res.Received = d.Changes, l.errors, d.Expected, d.Received
	res.Lost, res.Duplicates, res.Unexpected, res.Early = d.Lost, d.Duplicates, d.Unexpected, d.Early
	res.Seconds, res.ChangeP99Ms = l.secs(), ms(l.Latencies.P99)
	res.Met = res.P50Ms <= 25 && res.P99Ms <= 100 && res.Lost == 0 && res.ChangeErrors == 0 && res.Received > 0
	res.Figure = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, lost %d", res.P50Ms, res.P99Ms, res.Lost)
	return &res.Common, nil
}

// webhookThroughput: the change rate grows step by step (every change to
// every buyer) until the p99 passes a second, deliveries fall behind or
// some are lost, then bisects; the best step that kept up is the result.
func (r *runner) webhookThroughput(ctx context.Context) (*Common, error) {
	c := r.cfg.WebhookThroughput
	res := &ThroughputResult{Common: Common{Goal: "deliveries_per_s >= 5000 with lost = 0"}, Buyers: c.Buyers, BestStep: -1}
	r.res.WebhookThroughput = res
	recv, ch, done, err := r.webhookStack(ctx, c.Buyers, c.Deals, c.Buyers, true)
	if err != nil {
		return &res.Common, err
	}
	defer done()
	stepTime := time.Duration(min(c.StepSeconds, r.cfg.Seconds)) * time.Second
	if res.PostFloor, err = r.postFloor(ctx, recv, c.Buyers, stepTime); err != nil {
		r.note("webhook_throughput: POST floor: %v", err)
	}
	stop := r.measure(ctx, "webhook_throughput", &res.Common)
	defer stop()
	step := func(n int) ThroughputStep {
		tr := newTracker()
		recv.Track(tr)
		before, err := r.st.deliveryHistogram(ctx)
		if err != nil {
			r.note("webhook_throughput: %v", err)
		}
		busy := machineBusy()
		l := ch.changes(ctx, tr, vegeta.ConstantPacer{Freq: n, Per: time.Second}, stepTime)
		tr.wait(ctx, c.Buyers, r.cfg.Grace)
		busy = machineBusy() - busy
		d := tr.result(c.Buyers)
		h := r.st.deliveredSince(ctx, before, d.Received)
		span := max(l.elapsed, d.Span)
		s := ThroughputStep{
			ChangeRate: n, Offered: n * c.Buyers, Changes: d.Changes, ChangeErrors: l.errors, Expected: d.Expected,
			Received: d.Received, Lost: d.Lost, Duplicates: d.Duplicates, P50Ms: h.quantileMs(.5), P99Ms: h.quantileMs(.99),
			Seconds: round(span.Seconds()), DeliveriesPerS: round(perSecond(d.Received, span)),
		}
		if d.Changes > 0 {
			s.MachineCPUUs = round(busy / float64(d.Changes) * 1e6)
		}
		s.KeptUp = s.DeliveriesPerS >= 0.9*float64(s.Offered) && s.Lost == 0 && s.ChangeErrors == 0
		r.log.Info("bench: throughput step", "changes_per_s", n, "offered", s.Offered, "delivered_per_s", s.DeliveriesPerS,
			"p99_ms", s.P99Ms, "lost", s.Lost, "kept_up", s.KeptUp, "change_errors", l.err())
		return s
	}
	drain := func(n int) {
		if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
			r.note("webhook_throughput: after %d changes/s: %v", n, err)
		}
	}
	rate := float64(c.StartRate)
	res.StopReason = "reached the last step"
	good, bad := 0, 0 // the fastest rate that held, the first that did not
	for k := range c.MaxSteps {
		n := int(rate)
		s := step(n)
		res.Steps = append(res.Steps, s)
		if reason := stepStop(s); reason != "" {
			res.StopReason, bad = reason, n
			break
		}
		good = n
		if k+1 < c.MaxSteps {
			drain(n)
		}
		rate = math.Ceil(rate * c.Factor)
	}
	// The growth is coarse: the limit lies anywhere between the last rate
	// that held and the first that did not.
	for range c.Refine {
		n, ok := bisect(good, bad)
		if !ok || lostIn(res.Steps) {
			break
		}
		drain(bad)
		s := step(n)
		s.Refined = true
		res.Steps = append(res.Steps, s)
		if stepStop(s) == "" {
			good = n
		} else {
			bad = n
		}
	}
	res.BestStep, res.Sustained = bestStep(res.Steps)
	if i := max(res.BestStep, 0); len(res.Steps) > 0 {
		b := res.Steps[i]
		res.Lost, res.Duplicates, res.P50Ms, res.P99Ms = b.Lost, b.Duplicates, b.P50Ms, b.P99Ms
		if res.BestStep >= 0 {
			res.DeliveriesPerS = b.DeliveriesPerS
		}
	}
	res.Met = res.DeliveriesPerS >= 5000 && res.Lost == 0 && res.BestStep >= 0
	res.Figure = fmt.Sprintf("%.0f deliveries/s, lost %d", res.DeliveriesPerS, res.Lost)
	return &res.Common, nil
}

// bisect returns the rate halfway between good (held) and bad (did not),
// or false when there is nothing to bisect or they are within an eighth
// of good of each other.
func bisect(good, bad int) (int, bool) {
	if good <= 0 || bad <= good || bad-good <= max(1, good/8) {
		return 0, false
	}
	return (good + bad) / 2, true
}

// lostIn reports whether a step lost a delivery: searching on would only
// measure a broken system.
func lostIn(steps []ThroughputStep) bool {
	for _, s := range steps {
		if s.Lost > 0 {
			return true
		}
	}
	return false
}

// stepStop says why the search ends after step s, or "".
func stepStop(s ThroughputStep) string {
	switch {
	case s.Lost > 0:
		return fmt.Sprintf("%d deliveries lost at %d changes/s", s.Lost, s.ChangeRate)
	case s.P99Ms > 1000:
		return fmt.Sprintf("p99 passed 1 s at %d changes/s", s.ChangeRate)
	case s.ChangeErrors > 0:
		return fmt.Sprintf("%d changes failed at %d changes/s", s.ChangeErrors, s.ChangeRate)
	case !s.KeptUp:
		return fmt.Sprintf("deliveries fell behind at %d changes/s (%.0f of %d/s)", s.ChangeRate, s.DeliveriesPerS, s.Offered)
	}
	return ""
}

// bestStep is the fastest step with nothing lost that kept up with p99
// within a second (sustained), else the fastest with nothing lost.
func bestStep(steps []ThroughputStep) (int, bool) {
	best, sustained := -1, false
	for i, s := range steps {
		ok := s.Lost == 0 && s.KeptUp && s.P99Ms <= 1000
		switch {
		case ok && (!sustained || s.DeliveriesPerS > steps[best].DeliveriesPerS):
			best, sustained = i, true
		case !sustained && s.Lost == 0 && (best < 0 || s.DeliveriesPerS > steps[best].DeliveriesPerS):
			best = i
		}
	}
	return best, sustained
}

// fanout: one change of a seller that authorised every buyer, each buyer
// with an endpoint on one of a few receivers; the figure is the time from
// the API's answer to the last arrival.
func (r *runner) fanout(ctx context.Context) (*Common, error) {
	c := r.cfg.Fanout
	res := &FanoutResult{Common: Common{Goal: "seconds <= 5 to the last arrival, lost = 0"}, Buyers: c.Buyers, Receivers: c.Receivers}
	r.res.Fanout = res
	recv, ch, done, err := r.webhookStack(ctx, c.Buyers, 1, c.Receivers, false)
	if err != nil {
		return &res.Common, err
	}
	defer done()
	tr := newTracker()
	recv.Track(tr)
	before, err := r.st.deliveryHistogram(ctx)
	if err != nil {
		return &res.Common, err
	}
	stop := r.measure(ctx, "fanout", &res.Common)
	if err := ch.changes(ctx, tr, burstPacer{n: 1, bursts: 1}, 0).err(); err != nil {
		stop()
		return &res.Common, err
	}
	tr.wait(ctx, c.Buyers, max(r.cfg.Grace, 2*time.Minute))
	stop()
	d := tr.result(c.Buyers)
	res.latencyOf(r.st.deliveredSince(ctx, before, d.Received))
	res.Expected, res.Received, res.Lost, res.Duplicates = d.Expected, d.Received, d.Lost, d.Duplicates
	res.Seconds, res.PerS = round(d.LastAfter.Seconds()), round(perSecond(d.Received, d.LastAfter))
	res.Met = res.Seconds <= 5 && res.Lost == 0 && res.Received > 0
	res.Figure = fmt.Sprintf("%.2f s to the last of %d, lost %d", res.Seconds, res.Received, res.Lost)
	return &res.Common, nil
}

// PostFloor is the least one delivery's HTTP exchange costs this machine:
// a signed POST of an event's payload answered 204, in a closed loop, with
// no Temporal, database or bookkeeping. The same POSTs sent in bursts of
// one per endpoint, as a change's deliveries leave, cost more each: between
// bursts goroutines and connections go idle and must be woken.
type PostFloor struct {
	Requests          int     `json:"requests"`
	Errors            int     `json:"errors"`
	RPS               float64 `json:"rps"`
	BodyBytes         int     `json:"body_bytes"`
	Conns             int     `json:"conns"`
	MachineCPUUs      float64 `json:"machine_cpu_us_per_request"`
	BurstChangesPerS  int     `json:"burst_changes_per_s"`
	BurstRequests     int     `json:"burst_requests"`
	BurstErrors       int     `json:"burst_errors"`
	BurstMachineCPUUs float64 `json:"burst_machine_cpu_us_per_request"` // idle taken out
	BurstIdleCPUS     float64 `json:"burst_idle_cpu_s"`                 // what was taken out
}

// burstChangesPerS is a change rate every machine so far kept up with.
const burstChangesPerS = 32

// postFloor measures PostFloor against n endpoints of recv with the
// payload of the newest event.
func (r *runner) postFloor(ctx context.Context, recv *Receivers, n int, d time.Duration) (*PostFloor, error) {
	var body []byte
	if err := r.st.pool.QueryRow(ctx, `SELECT payload::TEXT FROM events ORDER BY created_at DESC LIMIT 1`).Scan(&body); err != nil {
		return nil, err
	}
	urls := recv.URLs("/floor/", n)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	key := []byte("bench-post-floor-signing-key-32b")
	var next atomic.Int64
	tr := func(t *vegeta.Target) error {
		ts := time.Now()
		h := http.Header{"Content-Type": {"application/json"}, "Webhook-Id": {"evt_floor"},
			"Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "Webhook-Signature": {webhook.Sign("evt_floor", ts, body, key)}}
		*t = vegeta.Target{Method: http.MethodPost, URL: urls[int(next.Add(1)-1)%n], Body: body, Header: h}
		return nil
	}
	closedLoop(ctx, hc, n, 200*time.Millisecond, tr) // a connection per endpoint
	busy := machineBusy()
	l := closedLoop(ctx, hc, n, d, tr)
	busy = machineBusy() - busy
	f := &PostFloor{Requests: int(l.Requests), Errors: l.errors, RPS: l.rps(), BodyBytes: len(body), Conns: n, BurstChangesPerS: burstChangesPerS}
	if l.Requests > 0 {
		f.MachineCPUUs = round(busy / float64(l.Requests) * 1e6)
	}
	// Bursts leave the machine mostly idle, so its background would weigh
	// on each request: measured first, and taken out.
	idleRate, _ := idleRates(min(time.Second, d))
	busy, from := machineBusy(), time.Now()
	b := attack(ctx, hc, tr, burstPacer{n: n, bursts: int(burstChangesPerS * d.Seconds()), every: time.Second / burstChangesPerS}, 0, n, n, nil)
	idle := idleRate * time.Since(from).Seconds()
	busy = lessIdle(machineBusy()-busy, idle)
	f.BurstRequests, f.BurstErrors, f.BurstIdleCPUS = int(b.Requests), b.errors, round(idle)
	if b.Requests > 0 && busy > 0 {
		f.BurstMachineCPUUs = round(busy / float64(b.Requests) * 1e6)
	}
	return f, nil
}
