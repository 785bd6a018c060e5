package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/dealcast/dealcast/internal/store"
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

// changes sends changes paced by p for d and counts each answered one in tr.
func (ch *changer) changes(ctx context.Context, tr *Tracker, p vegeta.Pacer, d time.Duration) *load {
	return attack(ctx, ch.hc, ch.target, p, d, 10, 0, func(res *vegeta.Result) {
		if res.Error == "" {
			tr.mu.Lock()
			tr.changes++
			tr.mu.Unlock()
		}
	})
}

// webhookRun is a webhook scenario's set-up: receivers, one seller whose
// buyers each have an endpoint on them, and deals to change.
type webhookRun struct {
	*runner
	recv   *Receivers
	ch     *changer
	buyers int
}

// webhookStack sets up a webhookRun; warm sends one change per deal and
// waits for its deliveries, so connections are open and caches warm.
func (r *runner) webhookStack(ctx context.Context, buyers, deals, receivers int, warm bool) (*webhookRun, error) {
	recv, err := startReceivers(receivers)
	if err != nil {
		return nil, err
	}
	w := &webhookRun{runner: r, recv: recv, buyers: buyers}
	sd, err := r.st.seed(ctx, 1, buyers, deals, recv.URLs(buyers))
	if err != nil {
		recv.Close()
		return nil, err
	}
	token, err := r.st.token(store.RoleSeller, sd.sellers[0])
	if err != nil {
		recv.Close()
		return nil, err
	}
	w.ch = &changer{st: r.st, hc: newClient(256), token: token, deals: sd.deals, prices: make([]atomic.Int64, deals)}
	if warm {
		d, _, _, err := w.run(ctx, burstPacer{n: 1, bursts: deals}, 0, r.cfg.Grace)
		if err == nil && d.Lost > 0 {
			err = fmt.Errorf("%d of %d deliveries did not arrive within %v", d.Lost, d.Expected, r.cfg.Grace)
		}
		if err != nil {
			w.close()
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
			r.note("webhook warm-up: %v", err)
		}
	}
	return w, nil
}

func (w *webhookRun) close() { w.ch.hc.CloseIdleConnections(); w.recv.Close() }

// run sends changes paced by p for d, waits up to grace for their
// deliveries and returns what arrived, with the service's own histogram
// of commit to delivery over the run, the time from the first change to
// the last arrival, and from the last answer to the last arrival.
func (w *webhookRun) run(ctx context.Context, p vegeta.Pacer, d, grace time.Duration) (Delivery, histogram, runTimes, error) {
	tr := &Tracker{}
	w.recv.tracker.Store(tr)
	before, err := w.st.deliveryHistogram(ctx)
	if err != nil {
		return Delivery{}, histogram{}, runTimes{}, err
	}
	start := time.Now()
	l := w.ch.changes(ctx, tr, p, d)
	answered := time.Now()
	tr.wait(ctx, w.buyers, grace)
	got := tr.result(w.buyers)
	if l.errors > 0 {
		err = l.err()
	}
	t := runTimes{span: l.elapsed}
	if !got.lastAt.IsZero() {
		t.span, t.lastAfter = max(got.lastAt.Sub(start), l.elapsed), max(got.lastAt.Sub(answered), 0)
	}
	return got, w.st.deliveredSince(ctx, before, got.Received), t, err
}

type runTimes struct{ span, lastAfter time.Duration }

// webhookLatency: a steady change rate, each change delivered to every
// buyer; latency is the service's own, from commit to the receiver's 2xx.
func (r *runner) webhookLatency(ctx context.Context, res *Result) error {
	res.Goal = "p50_ms <= 25, p99_ms <= 100, lost = 0"
	rate, buyers := r.cfg.LatencyRate, r.cfg.LatencyBuyers
	w, err := r.webhookStack(ctx, buyers, 16, buyers, true)
	if err != nil {
		return err
	}
	defer w.close()
	stop := r.measure(ctx, "webhook_latency", res)
	d, h, span, err := w.run(ctx, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, r.cfg.duration(), r.cfg.Grace)
	stop()
	res.latencyOf(h)
	res.set("change_rate", rate, "buyers", buyers, "changes", d.Changes, "expected", d.Expected, "received", d.Received,
		"lost", d.Lost, "duplicates", d.Duplicates, "seconds", round(span.span.Seconds()))
	res.Met = res.P50Ms <= 25 && res.P99Ms <= 100 && d.Lost == 0 && err == nil && d.Received > 0
	res.Figure = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, lost %d", res.P50Ms, res.P99Ms, d.Lost)
	return err
}

// ThroughputStep is one change rate of webhook_throughput.
type ThroughputStep struct {
	ChangeRate     int     `json:"change_rate"`
	Offered        int     `json:"offered_deliveries_per_s"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	Changes        int     `json:"changes"`
	Expected       int     `json:"expected"`
	Received       int     `json:"received"`
	Lost           int     `json:"lost"`
	Duplicates     int     `json:"duplicates"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	Seconds        float64 `json:"seconds"`
	KeptUp         bool    `json:"kept_up"`
	MachineCPUUs   float64 `json:"machine_cpu_us_per_change"`
}

// webhookThroughput: the change rate doubles step by step (every change to
// every buyer) until deliveries fall behind, the p99 passes a second or
// one is lost; the fastest step that kept up is the result.
func (r *runner) webhookThroughput(ctx context.Context, res *Result) error {
	res.Goal = "deliveries_per_s >= 5000 with lost = 0"
	buyers := r.cfg.ThroughputBuyers
	w, err := r.webhookStack(ctx, buyers, 64, buyers, true)
	if err != nil {
		return err
	}
	defer w.close()
	stepTime := time.Duration(min(r.cfg.ThroughputStepSeconds, r.cfg.Seconds)) * time.Second
	stop := r.measure(ctx, "webhook_throughput", res)
	var steps []ThroughputStep
	best, stopReason := -1, "reached the last step"
	step := func(n int) bool {
		if len(steps) > 0 {
			if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
				r.note("webhook_throughput: before %d changes/s: %v", n, err)
			}
		}
		busy := machineBusy()
		d, h, span, err := w.run(ctx, vegeta.ConstantPacer{Freq: n, Per: time.Second}, stepTime, r.cfg.Grace)
		s := ThroughputStep{ChangeRate: n, Offered: n * buyers, Changes: d.Changes, Expected: d.Expected, Received: d.Received,
			Lost: d.Lost, Duplicates: d.Duplicates, P50Ms: h.quantileMs(.5), P99Ms: h.quantileMs(.99),
			Seconds: round(span.span.Seconds()), DeliveriesPerS: round(perSecond(d.Received, span.span))}
		if d.Changes > 0 {
			s.MachineCPUUs = round((machineBusy() - busy) / float64(d.Changes) * 1e6)
		}
		s.KeptUp = s.DeliveriesPerS >= 0.9*float64(s.Offered) && s.Lost == 0 && err == nil && s.P99Ms <= 1000
		steps = append(steps, s)
		r.log.Info("bench: throughput step", "changes_per_s", n, "delivered_per_s", s.DeliveriesPerS, "p99_ms", s.P99Ms, "lost", s.Lost)
		if s.KeptUp && (best < 0 || s.DeliveriesPerS > steps[best].DeliveriesPerS) {
			best = len(steps) - 1
		} else if !s.KeptUp {
			stopReason = fmt.Sprintf("at %d changes/s: %.0f of %d deliveries/s, p99 %.0f ms, %d lost, change errors: %v",
				n, s.DeliveriesPerS, s.Offered, s.P99Ms, s.Lost, err)
		}
		return s.KeptUp
	}
	// Doubling is coarse: the limit lies anywhere between the last rate
	// that held and the first that did not, so up to three steps bisect.
	good, bad := 0, 0
	for k, n := 0, r.cfg.ThroughputStartRate; k < r.cfg.ThroughputSteps && bad == 0; k, n = k+1, 2*n {
		if step(n) {
			good = n
		} else {
			bad = n
		}
	}
	for range 3 {
		n := (good + bad) / 2
		if good == 0 || bad-good <= max(1, good/8) || steps[len(steps)-1].Lost > 0 {
			break
		}
		if step(n) {
			good = n
		} else {
			bad = n
		}
	}
	stop()
	res.set("buyers", buyers, "steps", steps, "best_step", best, "stop_reason", stopReason, "deliveries_per_s", 0.0, "lost", 0)
	if best >= 0 {
		b := steps[best]
		res.P50Ms, res.P99Ms = b.P50Ms, b.P99Ms
		res.set("deliveries_per_s", b.DeliveriesPerS, "lost", b.Lost, "duplicates", b.Duplicates)
	}
	lost := 0
	for _, s := range steps {
		lost += s.Lost
	}
	res.Met = best >= 0 && steps[best].DeliveriesPerS >= 5000 && lost == 0
	res.Figure = fmt.Sprintf("%.0f deliveries/s, lost %d", res.Figures["deliveries_per_s"], lost)
	return nil
}

// fanout: one change of a seller that authorised every buyer, each buyer
// with an endpoint on one of a few receivers; the figure is the time from
// the API's answer to the last arrival.
func (r *runner) fanout(ctx context.Context, res *Result) error {
	res.Goal = "seconds <= 5 to the last arrival, lost = 0"
	buyers := r.cfg.FanoutBuyers
	w, err := r.webhookStack(ctx, buyers, 1, r.cfg.FanoutReceivers, false)
	if err != nil {
		return err
	}
	defer w.close()
	stop := r.measure(ctx, "fanout", res)
	d, h, span, err := w.run(ctx, burstPacer{n: 1, bursts: 1}, 0, max(r.cfg.Grace, 2*time.Minute))
	stop()
	res.latencyOf(h)
	secs := round(span.lastAfter.Seconds())
	res.set("buyers", buyers, "receivers", r.cfg.FanoutReceivers, "expected", d.Expected, "received", d.Received,
		"lost", d.Lost, "duplicates", d.Duplicates, "seconds", secs, "deliveries_per_s", round(perSecond(d.Received, span.lastAfter)))
	res.Met = secs <= 5 && d.Lost == 0 && d.Received > 0 && err == nil
	res.Figure = fmt.Sprintf("%.2f s to the last of %d, lost %d", secs, d.Received, d.Lost)
	return err
}
