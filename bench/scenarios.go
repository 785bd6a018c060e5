package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	vegeta "github.com/tsenart/vegeta/v12/lib"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
)

const draft = `{"name":"Bench deal","items":[{"id":"sku-1","name":"Bench item 1","price":500},` +
	`{"id":"sku-2","name":"Bench item 2","price":500}],"total_price":1000,"currency":"GBP"}`

func pick[T any](s []T) T { return s[rand.IntN(len(s))] }

// read: GET /v1/deals/{id} by authorised buyers, beside pgbench -S.
func (r *runner) read(ctx context.Context, res *Result) error {
	sd, err := r.st.seed(ctx, r.cfg.ReadSellers, r.cfg.ReadConns, 1000, nil)
	if err != nil {
		return err
	}
	conns, hc := r.cfg.ReadConns, newClient(r.cfg.ReadConns)
	defer hc.CloseIdleConnections()
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodGet, "/v1/deals/"+pick(sd.deals), pick(sd.buyerTokens), nil)
		return nil
	}
	tps := r.baseline(ctx, "-S", res)
	// Warm-up: connections, the token cache and every pooled connection's statements.
	if err := closedLoop(ctx, hc, conns, min(2*time.Second, r.cfg.duration()), tr).err(); err != nil {
		return err
	}
	r.readWrite(res, phase(r, ctx, res, func() *load { return closedLoop(ctx, hc, conns, r.cfg.duration(), tr) }), conns, tps, 0.7)
	res.set("http_floor", r.httpFloor(ctx, hc, conns, tps))
	return nil
}

// write: POST /v1/deals by sellers with one buyer's endpoint each, beside pgbench -N; then without delivery.
func (r *runner) write(ctx context.Context, res *Result) error {
	conns, hc := r.cfg.WriteConns, newClient(r.cfg.WriteConns)
	defer hc.CloseIdleConnections()
	w, err := r.webhookStack(ctx, conns, 1, 0, 1, false)
	defer w.close()
	if err != nil {
		return err
	}
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodPost, "/v1/deals", pick(w.sd.sellerTokens), []byte(draft))
		return nil
	}
	tps := r.baseline(ctx, "-N", res)
	// A few deals per connection warm the caches; their deliveries finish first.
	if err := count(ctx, hc, 5*conns, conns, tr); err != nil {
		return err
	}
	if b := r.st.drain(ctx, r.cfg.DrainTimeout); !b.drained() {
		r.note("write: %d events and %d workflows of the warm-up still undelivered (%v)", b.undispatched, b.running, b.err)
	}
	r.st.analyze(ctx)
	// The floors first: after the writes their backlog would drain beside them.
	res.set("http_floor", r.httpFloor(ctx, hc, conns, tps))
	if err := r.workflowFloor(ctx); err != nil {
		r.note("write: no workflow floor: %v", err)
	}
	from := w.recv.track()
	l := phase(r, ctx, res, func() *load { return closedLoop(ctx, hc, conns, r.cfg.duration(), tr) })
	loadEnd, delivered := time.Now(), w.recv.received()
	r.readWrite(res, l, conns, tps, 0.3)
	res.set("delivery_backlog", r.measureBacklog(ctx))
	// Every deal goes to its seller's one buyer: an arrival is a delivered change.
	d, drain := w.recv.wait(ctx, l.ok(), time.Second), time.Since(loadEnd)
	if d.Lost == 0 {
		drain = max(d.lastAt.Sub(loadEnd), 0)
	}
	perS := ratio(float64(delivered), l.secs())
	res.set("delivered_per_s", perS, "drain_s", round(drain.Seconds()), "undelivered", d.Lost)
	res.Met = res.Met && perS >= 0.8*l.rps() && drain <= 5*time.Second
	r.actionsPerChange(ctx, res, from, time.Now(), l.ok())
	res.set("without_delivery", r.withoutDelivery(ctx, tps, func() *load { return closedLoop(ctx, hc, conns, r.cfg.duration(), tr) }))
	return nil
}

// httpFloor is the closed loop on GET /healthz: no authentication, database or JSON.
func (r *runner) httpFloor(ctx context.Context, hc *http.Client, conns int, pgbenchTPS float64) map[string]any {
	busy := machineBusy()
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), targets(r.st.target(http.MethodGet, "/healthz", "", nil)))
	f := l.figures()
	f["path"], f["rps"], f["ratio"], f["machine_cpu_us_per_request"] = "/healthz", l.rps(), ratio(l.rps(), pgbenchTPS),
		ratio((machineBusy()-busy)*1e6, float64(l.Requests))
	return f
}

// readWrite fills the figures of read and write: the API's rate over pgbench's.
func (r *runner) readWrite(res *Result, l *load, conns int, pgbenchTPS, goal float64) {
	q := ratio(l.rps(), pgbenchTPS)
	res.load(l)
	res.set("ratio", q, "connections", conns)
	res.Met = q >= goal && l.errors() == 0
}

// measureBacklog counts the delivery work a write load left and times its drain.
func (r *runner) measureBacklog(ctx context.Context) map[string]any {
	at, left := r.st.backlog(ctx), r.st.drain(ctx, r.cfg.DrainTimeout)
	r.skipDrain = !left.drained() // the drain was the wait: what is left is thrown away at once
	done, started := at.undispatched+at.running-left.undispatched-left.running, at.undispatched-left.undispatched
	return map[string]any{"undispatched_events": at.undispatched, "running_workflows": at.running,
		"drain_seconds": round(left.took.Seconds()), "drained": left.drained(), "running_after": left.running,
		"workflows_per_s": perSecond(int(done), left.took), "started_per_s": perSecond(int(started), left.took)}
}

// withoutDelivery runs load with the delivery side stopped, then starts a fresh one.
func (r *runner) withoutDelivery(ctx context.Context, pgbenchTPS float64, run func() *load) map[string]any {
	r.st.stopDelivery()
	l := run()
	if err := r.st.restartDelivery(ctx); err != nil {
		r.note("restarting the delivery side: %v", err)
	}
	out := l.figures()
	if pgbenchTPS > 0 {
		out["ratio"] = ratio(l.rps(), pgbenchTPS)
	}
	return out
}

// list: a buyer authorised by many sellers pages through their deals, newest first, round and round.
func (r *runner) list(ctx context.Context, res *Result) error {
	limit, conns, hc := r.cfg.ListLimit, r.cfg.ListConns, newClient(r.cfg.ListConns)
	defer hc.CloseIdleConnections()
	sd, err := r.st.seed(ctx, r.cfg.ListSellers, 1, r.cfg.ListDeals, nil)
	if err != nil {
		return err
	}
	// Each page's cursor, as a client paging from the start would get it.
	var cursors []string
	var pages []vegeta.Target
	for cursor := ""; err == nil; {
		cursors = append(cursors, cursor)
		pages = append(pages, r.st.target(http.MethodGet, "/v1/deals?limit="+strconv.Itoa(limit)+"&cursor="+url.QueryEscape(cursor), sd.buyerTokens[0], nil))
		p, e := r.st.store.BuyerDeals(ctx, sd.buyers[0], store.DealFilter{}, cursor, limit)
		if err, cursor = e, p.Next; cursor == "" {
			break
		}
	}
	if err = cmp.Or(err, closedLoop(ctx, hc, conns, min(time.Second, r.cfg.duration()), targets(pages...)).err()); err != nil {
		return err
	}
	l := phase(r, ctx, res, func() *load { return closedLoop(ctx, hc, conns, r.cfg.duration(), targets(pages...)) })
	res.load(l)
	res.set("pages", l.ok(), "passes", l.ok()/len(pages), "deals", r.cfg.ListDeals, "sellers", r.cfg.ListSellers, "limit", limit, "connections", conns)
	res.Met = res.P99Ms <= 50 && l.errors() == 0 && l.ok() > 0
	var explain []map[string]any
	for i, page := range []string{"first", "middle"} {
		lines, err := r.st.store.ExplainBuyerDeals(ctx, sd.buyers[0], store.DealFilter{}, cursors[i*len(cursors)/2], limit)
		plan := strings.Join(lines, "\n")
		if err != nil {
			r.note("list: EXPLAIN ANALYZE failed: %v", err)
		}
		explain = append(explain, map[string]any{"page": page, "plan": plan,
			"execution_ms": msIn(plan, "Execution Time"), "planning_ms": msIn(plan, "Planning Time")})
	}
	res.set("explain", explain)
	return nil
}

func msIn(plan, label string) float64 {
	m := append(regexp.MustCompile(label+`: ([0-9.]+) ms`).FindStringSubmatch(plan), "", "0")
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// concurrency: an open-loop rate over many held connections, 9 reads to 1 write; then without delivery.
func (r *runner) concurrency(ctx context.Context, res *Result) error {
	conns, rate, hc := r.cfg.ConcurrencyConns, r.cfg.ConcurrencyRate, newClient(r.cfg.ConcurrencyConns)
	defer hc.CloseIdleConnections()
	sd, err := r.st.seed(ctx, 10, 100, 1000, nil)
	if err != nil {
		return err
	}
	// Requests held for half a second each open a connection, which stays.
	if err := count(ctx, hc, conns, conns, targets(r.st.target(http.MethodGet, "/bench/hold", "", nil))); err != nil {
		return err
	}
	r.st.peakConns.Store(r.st.openConns.Load())
	res.set("open_conns_start", r.st.openConns.Load())
	// Every token's account is looked up once, outside the measurement.
	var warm []vegeta.Target
	for i, tok := range sd.buyerTokens {
		warm = append(warm, r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[i%len(sd.deals)], tok, nil))
	}
	for _, tok := range sd.sellerTokens {
		warm = append(warm, r.st.target(http.MethodPost, "/v1/deals", tok, []byte(draft)))
	}
	if err := count(ctx, hc, len(warm), 8, targets(warm...)); err != nil {
		return err
	}
	r.st.analyze(ctx)
	var sent, writes atomic.Int64
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodGet, "/v1/deals/"+pick(sd.deals), pick(sd.buyerTokens), nil)
		if sent.Add(1)%10 == 0 { // every tenth request is a write, spread evenly over the run
			writes.Add(1)
			*t = r.st.target(http.MethodPost, "/v1/deals", pick(sd.sellerTokens), []byte(draft))
		}
		return nil
	}
	l := phase(r, ctx, res, func() *load { return openLoop(ctx, hc, rate, r.cfg.duration(), tr) })
	b := r.st.backlog(ctx)
	// Failed requests count in the latency too: a timeout is the slowest answer.
	res.load(l)
	res.set("target_rps", rate, "reads", int64(l.Requests)-writes.Load(), "writes", writes.Load(), "connections", conns,
		"open_conns_peak", r.st.peakConns.Load(), "outstanding", map[string]any{"undispatched_events": b.undispatched, "running_workflows": b.running})
	res.Met = l.errors() == 0 && res.P99Ms <= 150 && l.Requests > 0
	res.set("without_delivery", r.withoutDelivery(ctx, 0, func() *load { return openLoop(ctx, hc, rate, r.cfg.duration(), tr) }))
	return nil
}

// hotAuction: buyers bid on one auction as fast as they can, beside pgbench updating one row.
func (r *runner) hotAuction(ctx context.Context, res *Result) error {
	bidders, hc := r.cfg.AuctionBidders, newClient(r.cfg.AuctionBidders)
	defer hc.CloseIdleConnections()
	sd, ids, err := r.auctions(ctx, bidders, 1, time.Now().Add(r.cfg.duration()+time.Hour), false)
	if err != nil {
		return err
	}
	tps := r.baseline(ctx, "hot_row", res)
	var amount atomic.Int64
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodPost, "/v1/auctions/"+ids[0]+"/bids", pick(sd.buyerTokens), fmt.Appendf(nil, `{"amount":%d}`, 100+amount.Add(1)))
		t.Header.Set("Idempotency-Key", uuid.NewString())
		return nil
	}
	l := phase(r, ctx, res, func() *load { return closedLoop(ctx, hc, bidders, r.cfg.duration(), tr) })
	// A refused bid (422) is an answer too: the database decided it.
	accepted, refused := l.StatusCodes["201"], l.StatusCodes["422"]
	other, perS, n, increasing := int(l.Requests)-accepted-refused, perSecond(accepted+refused, l.Duration+l.Wait), 0, false
	if err := r.st.pool.QueryRow(ctx, `SELECT count(*), coalesce(bool_and(amount > prev), true)
		FROM (SELECT amount, lag(amount) OVER (ORDER BY seq) AS prev FROM bids WHERE auction_id = $1) b`, ids[0]).Scan(&n, &increasing); err != nil {
		return err
	}
	increasing = increasing && n == accepted
	q := ratio(perS, tps)
	res.latency(l.Latencies)
	res.set("bidders", bidders, "requests", l.Requests, "accepted", accepted, "refused", refused, "errors", other,
		"bids_per_s", perS, "ratio", q, "accepted_increasing", increasing, "seconds", l.secs())
	res.Met = q >= 0.5 && res.P99Ms <= 100 && increasing && other == 0
	return nil
}

// auctionClose: auctions with one bid each, closing in the same second by their workflows.
func (r *runner) auctionClose(ctx context.Context, res *Result) error {
	n := r.cfg.AuctionCloses
	// At a whole second, after time to create and bid on every auction and
	// for the set-up's webhooks to go out, so the closes are measured alone.
	closesAt := time.Now().Add(10*time.Second + time.Duration(n)*60*time.Millisecond).Truncate(time.Second)
	_, ids, err := r.auctions(ctx, 1, n, closesAt, true)
	if err != nil || time.Now().After(closesAt) {
		return fmt.Errorf("creating %d auctions before their closes_at: %v", n, err)
	}
	setup := r.st.drain(ctx, time.Until(closesAt)-time.Second)
	// How late each close became visible (its commit, not the
	// transaction's start that updated_at holds), by a poll every closePoll.
	const closePoll = 20 * time.Millisecond
	seen := map[string]time.Time{}
	var invoices int
	err = phase(r, ctx, res, func() (err error) {
		for end := closesAt.Add(r.cfg.Grace); err == nil && (len(seen) < n || invoices < n) && time.Now().Before(end); time.Sleep(closePoll) {
			var closed []string
			err = r.st.pool.QueryRow(ctx, `SELECT array_agg(id::TEXT) FILTER (WHERE status = 'closed'),
				(SELECT count(*) FROM invoices WHERE auction_id = ANY($1)) FROM auctions WHERE id = ANY($1)`, ids).Scan(&closed, &invoices)
			for _, id := range closed {
				if _, ok := seen[id]; !ok {
					seen[id] = time.Now()
				}
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	var lags vegeta.Metrics
	for _, at := range seen {
		lags.Add(&vegeta.Result{Code: http.StatusOK, Timestamp: closesAt, Latency: at.Sub(closesAt)})
	}
	lags.Close()
	res.latency(lags.Latencies)
	res.set("auctions", n, "closed", len(seen), "invoices", invoices, "closes_at", closesAt.UTC().Format(time.RFC3339),
		"setup_drained", setup.drained(), "poll_ms", closePoll.Milliseconds())
	res.Met = len(seen) == n && invoices == n && res.P99Ms <= 1000
	return nil
}

// auctions seeds a seller with buyers and n deals, an auction on each and, with bid, one bid on it.
func (r *runner) auctions(ctx context.Context, buyers, n int, closesAt time.Time, bid bool) (sd seeded, ids []string, err error) {
	if sd, err = r.st.seed(ctx, 1, buyers, n, nil); err != nil {
		return sd, nil, err
	}
	body := fmt.Sprintf(`{"start_price":100,"min_increment":1,"closes_at":%q}`, closesAt.UTC().Format(time.RFC3339Nano))
	for i := 0; i < len(sd.deals) && err == nil; i++ {
		var a struct{ ID string }
		if err = r.post(ctx, "/v1/deals/"+sd.deals[i]+"/auctions", sd.sellerTokens[0], body, &a); err == nil && bid {
			err = r.post(ctx, "/v1/auctions/"+a.ID+"/bids", sd.buyerTokens[0], `{"amount":1000}`, &struct{}{})
		}
		ids = append(ids, a.ID)
	}
	return sd, ids, err
}

// post sends one POST of a set-up and decodes its 2xx answer into out.
func (r *runner) post(ctx context.Context, path, token, body string, out any) error {
	t := r.st.target(http.MethodPost, path, token, []byte(body))
	t.Header.Set("Idempotency-Key", uuid.NewString())
	req, _ := t.Request() // fails only for a bad method or URL
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// webhookRun is receivers, buyers' endpoints on them and deals to change in turn.
type webhookRun struct {
	*runner
	recv        *Receivers
	hc          *http.Client
	sd          seeded
	next, price atomic.Int64
}

// webhookStack sets up a webhookRun; warm changes each deal once first.
func (r *runner) webhookStack(ctx context.Context, sellers, buyers, deals, receivers int, warm bool) (*webhookRun, error) {
	recv, err := startReceivers(receivers)
	w := &webhookRun{runner: r, recv: recv, hc: newClient(256)}
	if err == nil {
		w.sd, err = r.st.seed(ctx, sellers, buyers, deals, recv.URLs(buyers))
	}
	if err == nil && warm {
		if d := w.run(ctx, hits(deals), 0, r.cfg.Grace); d.err != nil || d.Lost > 0 {
			err = fmt.Errorf("warm-up: %d of %d deliveries did not arrive within %v (%v)", d.Lost, d.Expected, r.cfg.Grace, d.err)
		}
		r.st.drain(ctx, r.cfg.DrainTimeout)
		r.st.analyze(ctx)
	}
	return w, err // the caller closes w, even on an error
}

func (w *webhookRun) close() { w.hc.CloseIdleConnections(); w.recv.Close() }

func (w *webhookRun) change(t *vegeta.Target) error {
	p := 2000 + w.price.Add(1)
	body := fmt.Appendf(nil, `{"total_price":%d,"items":[{"id":"i1","name":"Item","price":%d}]}`, p, p)
	*t = w.st.target(http.MethodPatch, "/v1/deals/"+w.sd.deals[int(w.next.Add(1))%len(w.sd.deals)], w.sd.sellerTokens[0], body)
	return nil
}

// run sends changes paced by p for d and waits up to grace for their deliveries.
func (w *webhookRun) run(ctx context.Context, p vegeta.Pacer, d, grace time.Duration) Delivery {
	from := w.recv.track()
	l := attack(ctx, w.hc, w.change, p, d, 10, 0)
	answered := time.Now()
	got := w.recv.wait(ctx, l.ok()*len(w.sd.buyers), grace)
	got.from, got.to, got.changes, got.buyers, got.err = from, time.Now(), l.ok(), len(w.sd.buyers), l.err()
	got.span = max(got.lastAt.Sub(from), answered.Sub(from))
	got.lastAfter = max(got.lastAt.Sub(answered), 0)
	return got
}

func (d Delivery) figures(res *Result) {
	res.latency(d.Latencies)
	res.set("expected", d.Expected, "received", d.Received, "lost", d.Lost, "duplicates", d.Duplicates, "buyers", d.buyers)
}

// webhookLatency: a steady change rate, each change delivered to every buyer.
func (r *runner) webhookLatency(ctx context.Context, res *Result) error {
	rate := r.cfg.LatencyRate
	w, err := r.webhookStack(ctx, 1, r.cfg.LatencyBuyers, 16, r.cfg.LatencyBuyers, true)
	defer w.close()
	if err != nil {
		return err
	}
	d := phase(r, ctx, res, func() Delivery {
		return w.run(ctx, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, r.cfg.duration(), r.cfg.Grace)
	})
	d.figures(res)
	res.set("change_rate", rate, "changes", d.changes, "seconds", round(d.span.Seconds()))
	res.Met = res.P50Ms <= 10 && res.P99Ms <= 50 && d.Lost == 0 && d.err == nil && d.Received > 0
	return d.err
}

// webhookThroughput: the change rate doubles until deliveries fall behind,
// the p99 passes a second or one is lost; the fastest step that kept up counts.
func (r *runner) webhookThroughput(ctx context.Context, res *Result) error {
	buyers := r.cfg.ThroughputBuyers
	w, err := r.webhookStack(ctx, 1, buyers, 64, buyers, true)
	defer w.close()
	if err != nil {
		return err
	}
	stepTime := time.Duration(min(r.cfg.ThroughputStepSeconds, r.cfg.Seconds)) * time.Second
	var steps []map[string]any
	var counted Delivery // the best step, or the last when none kept up
	best, lost, good, bad, stopReason := -1, 0, 0, 0, "reached the last step"
	step := func(n int) {
		busy := machineBusy()
		d := w.run(ctx, vegeta.ConstantPacer{Freq: n, Per: time.Second}, stepTime, r.cfg.Grace)
		perS, p99 := perSecond(d.Received, d.span), ms(d.Latencies.P99)
		keptUp := perS >= 0.9*float64(n*buyers) && d.Lost == 0 && d.err == nil && p99 <= 1000
		steps, lost = append(steps, map[string]any{"change_rate": n, "offered_deliveries_per_s": n * buyers, "deliveries_per_s": perS,
			"changes": d.changes, "expected": d.Expected, "received": d.Received, "lost": d.Lost, "duplicates": d.Duplicates,
			"p50_ms": ms(d.Latencies.P50), "p99_ms": p99, "seconds": round(d.span.Seconds()), "kept_up": keptUp,
			"machine_cpu_us_per_change": ratio((machineBusy()-busy)*1e6, float64(d.changes))}), lost+d.Lost
		if !keptUp {
			stopReason = fmt.Sprintf("at %d changes/s: %.0f of %d deliveries/s, p99 %.0f ms, %d lost, change errors: %v",
				n, perS, n*buyers, p99, d.Lost, d.err)
		}
		if best < 0 || keptUp && perS > perSecond(counted.Received, counted.span) {
			counted = d
			if keptUp {
				best = len(steps) - 1
			}
		}
		if r.st.drain(ctx, r.cfg.DrainTimeout); keptUp {
			good = n
		} else {
			bad = n
		}
	}
	// Doubling is coarse: up to three more steps bisect the last interval.
	phase(r, ctx, res, func() int {
		for k, n := 0, r.cfg.ThroughputStartRate; k < r.cfg.ThroughputSteps && bad == 0; k, n = k+1, 2*n {
			step(n)
		}
		for k := 0; k < 3 && good > 0 && bad-good > max(1, good/8) && lost == 0; k++ {
			step((good + bad) / 2)
		}
		return good
	})
	perS := perSecond(counted.Received, counted.span)
	counted.figures(res)
	res.set("buyers", buyers, "steps", steps, "best_step", best, "stop_reason", stopReason, "lost", lost, "deliveries_per_s", perS)
	r.actionsPerChange(ctx, res, counted.from, counted.to, counted.changes)
	actions, _ := res.Figures["temporal_actions_per_change"].(float64)
	res.Met = best >= 0 && perS >= 8000 && lost == 0 && actions > 0 && actions <= 0.2
	return nil
}

// fanout: one change to every buyer, timed from the API's answer to the last arrival.
func (r *runner) fanout(ctx context.Context, res *Result) error {
	w, err := r.webhookStack(ctx, 1, r.cfg.FanoutBuyers, 1, r.cfg.FanoutReceivers, false)
	defer w.close()
	if err != nil {
		return err
	}
	d := phase(r, ctx, res, func() Delivery { return w.run(ctx, hits(1), 0, max(r.cfg.Grace, 2*time.Minute)) })
	d.figures(res)
	secs := round(d.lastAfter.Seconds())
	res.set("receivers", r.cfg.FanoutReceivers, "seconds", secs, "deliveries_per_s", perSecond(d.Received, d.lastAfter))
	res.Met = secs <= 1.5 && d.Lost == 0 && d.Received > 0 && d.err == nil
	return d.err
}

// workflowFloor measures the CPU of the least workflow a change can start:
// eager, with the delivery workflow's options, done in its first task.
func (r *runner) workflowFloor(ctx context.Context) error {
	const queue, name = "dealcast-bench-workflow-floor", "BenchWorkflowFloor"
	c := r.st.client
	w := worker.New(c, queue, worker.Options{MaxConcurrentWorkflowTaskExecutionSize: 64})
	w.RegisterWorkflowWithOptions(func(workflow.Context, delivery.WorkflowInput) error { return nil }, workflow.RegisterOptions{Name: name})
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	busy0, proc0, from := machineBusy(), selfCPU(), time.Now()
	var started atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range r.cfg.FloorStarters {
		wg.Go(func() {
			for time.Since(from) < min(10*time.Second, r.cfg.duration()) && ctx.Err() == nil && failed.Load() == nil {
				dealID := uuid.NewString()
				_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID: "bench-floor-" + uuid.NewString(), TaskQueue: queue, EnableEagerStart: true,
					WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
					WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
					TypedSearchAttributes: temporal.NewSearchAttributes(
						delivery.DealIDAttr.ValueSet(dealID), delivery.EventTypeAttr.ValueSet("deal.updated")),
				}, name, delivery.WorkflowInput{EventID: "evt_" + uuid.NewString(), EventType: "deal.updated", DealID: dealID, LocalFirstPage: true})
				if err != nil {
					failed.Store(err)
				}
				started.Add(1)
			}
		})
	}
	wg.Wait()
	lastStart, n := time.Now(), int(started.Load())
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Completed'", queue)
	if err := failed.Load(); err != nil || !until(ctx, r.cfg.DrainTimeout, func() bool {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: r.st.cfg.TemporalNamespace, Query: query})
		return err == nil && resp.GetCount() >= int64(n)
	}) {
		return fmt.Errorf("%d workflows not all started and completed: %v", n, err)
	}
	// Each task's timeout timer fires 10 s later, after the workflow closed.
	time.Sleep(time.Until(lastStart.Add(11 * time.Second)))
	busy := machineBusy() - busy0
	r.res.WorkflowFloor = map[string]any{"workflows": n, "starters": r.cfg.FloorStarters, "seconds": round(time.Since(from).Seconds()),
		"machine_cpu_us_per_workflow": ratio(busy*1e6, float64(n)), "workflows_per_s": ratio(float64(runtime.NumCPU())*float64(n), busy),
		"process_cpu_us_per_workflow": ratio((selfCPU()-proc0)*1e6, float64(n))}
	return nil
}
