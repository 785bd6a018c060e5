package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
)

const rwGoal = "ratio = api_rps / pgbench_tps >= 0.7"

// warmUp is how long read load runs unmeasured first: long enough to open
// the connections, fill the token cache and prepare every pooled
// connection's statements.
func (r *runner) warmUp() time.Duration { return min(2*time.Second, r.cfg.duration()) }

// read: GET /v1/deals/{id} by authorised buyers, beside pgbench -S.
func (r *runner) read(ctx context.Context, res *Result) error {
	res.Goal = rwGoal
	sd, err := r.st.seed(ctx, r.cfg.ReadSellers, r.cfg.ReadConns, 1000, nil)
	if err != nil {
		return err
	}
	tokens, err := r.st.tokens(store.RoleBuyer, sd.buyers)
	if err != nil {
		return err
	}
	conns := r.cfg.ReadConns
	hc := newClient(conns)
	defer hc.CloseIdleConnections()
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[rand.IntN(len(sd.deals))], tokens[rand.IntN(len(tokens))], nil)
		return nil
	}
	tps := r.baseline(ctx, "-S", res)
	if err := closedLoop(ctx, hc, conns, r.warmUp(), tr).err(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	stop := r.measure(ctx, "read", res)
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), tr)
	stop()
	r.readWrite(res, l, conns, tps)
	res.set("http_floor", r.httpFloor(ctx, hc, conns, tps))
	return nil
}

// write: POST /v1/deals (the deal and its event in one statement, then a
// delivery workflow that sends nothing: the sellers have no buyers),
// beside pgbench -N; then once more with the delivery side stopped.
func (r *runner) write(ctx context.Context, res *Result) error {
	res.Goal = rwGoal
	conns := r.cfg.WriteConns
	sellers, err := r.st.accounts(ctx, "sellers", conns)
	if err != nil {
		return err
	}
	tokens, err := r.st.tokens(store.RoleSeller, sellers)
	if err != nil {
		return err
	}
	body := draftBody(2)
	hc := newClient(conns)
	defer hc.CloseIdleConnections()
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodPost, "/v1/deals", tokens[rand.IntN(len(tokens))], body)
		return nil
	}
	tps := r.baseline(ctx, "-N", res)
	// A few deals per connection warm the caches; their deliveries
	// finish before the measurement starts.
	if err := count(ctx, hc, 5*conns, conns, tr); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
		r.note("write: warm-up deliveries still running at the start: %v", err)
	}
	// The floors first: after the writes their backlog would drain beside them.
	res.set("http_floor", r.httpFloor(ctx, hc, conns, tps))
	if err := r.workflowFloor(ctx); err != nil {
		r.note("write: no workflow floor: %v", err)
	}
	stop := r.measure(ctx, "write", res)
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), tr)
	stop()
	r.readWrite(res, l, conns, tps)
	res.set("delivery_backlog", r.measureBacklog(ctx))
	res.set("without_delivery", r.withoutDelivery(ctx, tps, func() *load { return closedLoop(ctx, hc, conns, r.cfg.duration(), tr) }))
	return nil
}

func draftBody(n int) []byte {
	items := make([]deal.Item, n)
	for i := range items {
		items[i] = deal.Item{ID: "sku-" + strconv.Itoa(i+1), Name: "Bench item " + strconv.Itoa(i+1), Price: 500}
	}
	b, _ := json.Marshal(deal.Draft{Name: "Bench deal", Items: items, TotalPrice: int64(500 * n), Currency: "GBP"})
	return b
}

// baseline runs pgbench for as long as the scenario's load and returns
// its transactions a second; without pgbench the API is still measured,
// with no ratio.
func (r *runner) baseline(ctx context.Context, mode string, res *Result) float64 {
	if r.pgbench == nil {
		return 0
	}
	busy := machineBusy()
	b, err := r.pgbench.Run(ctx, mode, r.cfg.PgbenchClients, r.cfg.PgbenchJobs, r.cfg.duration())
	if err != nil {
		res.set("pgbench_error", err.Error())
		r.note("no pgbench %s baseline: %v", mode, err)
		return 0
	}
	if n := b.TPS * float64(b.Seconds); n > 0 {
		b.MachineCPUUs = round((machineBusy() - busy) / n * 1e6)
	}
	res.set("pgbench", b, "pgbench_tps", round(b.TPS))
	return round(b.TPS)
}

// httpFloor runs the scenario's closed loop on GET /healthz: the same
// server, instrumentation and client without authentication, database or
// JSON. The scenario's rate approaches it as the service's work shrinks.
func (r *runner) httpFloor(ctx context.Context, hc *http.Client, conns int, pgbenchTPS float64) map[string]any {
	busy := machineBusy()
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), targets(r.st.target(http.MethodGet, "/healthz", "", nil)))
	busy = machineBusy() - busy
	f := map[string]any{"path": "/healthz", "requests": l.Requests, "errors": l.errors, "rps": l.rps(),
		"p50_ms": ms(l.Latencies.P50), "p99_ms": ms(l.Latencies.P99), "ratio": ratio(l.rps(), pgbenchTPS)}
	if l.Requests > 0 {
		f["machine_cpu_us_per_request"] = round(busy / float64(l.Requests) * 1e6)
	}
	return f
}

// readWrite fills the figures of read and write: the API's rate over pgbench's.
func (r *runner) readWrite(res *Result, l *load, conns int, pgbenchTPS float64) {
	if err := l.err(); err != nil {
		r.log.Warn("bench: requests failed", "err", err)
	}
	q := ratio(l.rps(), pgbenchTPS)
	res.set("requests", l.Requests, "errors", l.errors, "seconds", l.secs(), "api_rps", l.rps(), "ratio", q, "connections", conns)
	res.latency(l.Latencies)
	res.Met = q >= 0.7 && l.errors == 0
	res.Figure = fmt.Sprintf("ratio %.3f (%.0f rps / pgbench %.0f tps)", q, l.rps(), pgbenchTPS)
}

// measureBacklog counts the delivery work a write load left and times its
// drain with nothing else running.
func (r *runner) measureBacklog(ctx context.Context) map[string]any {
	undispatched, running, err := r.st.backlog(ctx)
	if err != nil {
		r.note("write: counting the delivery backlog: %v", err)
		return nil
	}
	took, err := r.st.drain(ctx, r.cfg.DrainTimeout)
	b := map[string]any{"undispatched_events": undispatched, "running_workflows": running,
		"drain_seconds": round(took.Seconds()), "drained": err == nil}
	var left BacklogError
	if timedOut := (*BacklogError)(nil); errors.As(err, &timedOut) {
		left = *timedOut
	} else if err != nil {
		r.note("write: draining the delivery backlog: %v", err)
		return b
	}
	b["running_after"] = left.Running
	b["workflows_per_s"] = round(perSecond(int(undispatched+running-left.Undispatched-left.Running), took))
	b["started_per_s"] = round(perSecond(int(undispatched-left.Undispatched), took))
	// The drain was the wait: what is left is thrown away at once.
	r.skipDrain = err != nil
	return b
}

// withoutDelivery runs load once more with the delivery side stopped, then
// starts a fresh one without the events written meanwhile.
func (r *runner) withoutDelivery(ctx context.Context, pgbenchTPS float64, run func() *load) map[string]any {
	r.st.stopDelivery()
	l := run()
	if err := r.st.restartDelivery(ctx); err != nil {
		r.note("restarting the delivery side: %v", err)
	}
	out := map[string]any{"requests": l.Requests, "errors": l.errors, "api_rps": l.rps(),
		"p50_ms": ms(l.Latencies.P50), "p99_ms": ms(l.Latencies.P99), "seconds": l.secs()}
	if pgbenchTPS > 0 {
		out["ratio"] = ratio(l.rps(), pgbenchTPS)
	}
	return out
}

// list: one buyer, authorised by many sellers, pages through all their
// deals, newest first, from several connections, from the first page
// again after the last.
func (r *runner) list(ctx context.Context, res *Result) error {
	res.Goal = "p99_ms <= 50; api_rps reported"
	limit := r.cfg.ListLimit
	sd, err := r.st.seed(ctx, r.cfg.ListSellers, 1, r.cfg.ListDeals, nil)
	if err != nil {
		return err
	}
	buyer := sd.buyers[0]
	token, err := r.st.token(store.RoleBuyer, buyer)
	if err != nil {
		return err
	}
	// Each page's cursor, as a client paging from the start would get it.
	cursors := []string{""}
	for {
		p, err := r.st.store.BuyerDeals(ctx, buyer, store.DealFilter{}, cursors[len(cursors)-1], limit)
		if err != nil {
			return err
		}
		if p.Next == "" {
			break
		}
		cursors = append(cursors, p.Next)
	}
	pages := make([]vegeta.Target, len(cursors))
	for i, cur := range cursors {
		path := "/v1/deals?limit=" + strconv.Itoa(limit)
		if cur != "" {
			path += "&cursor=" + url.QueryEscape(cur)
		}
		pages[i] = r.st.target(http.MethodGet, path, token, nil)
	}
	conns := r.cfg.ListConns
	hc := newClient(conns)
	defer hc.CloseIdleConnections()
	if err := closedLoop(ctx, hc, conns, min(time.Second, r.cfg.duration()), targets(pages...)).err(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	stop := r.measure(ctx, "list", res)
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), targets(pages...))
	stop()
	res.set("requests", l.Requests, "errors", l.errors, "seconds", l.secs(), "pages", l.ok(), "api_rps", l.rps(),
		"passes", l.ok()/len(pages), "deals", r.cfg.ListDeals, "sellers", r.cfg.ListSellers, "limit", limit, "connections", conns)
	res.latency(l.Latencies)
	res.Met = res.P99Ms <= 50 && l.errors == 0 && l.ok() > 0
	res.Figure = fmt.Sprintf("p99 %.1f ms, %.0f pages/s", res.P99Ms, l.rps())
	explain, err := r.explainList(ctx, buyer, limit, cursors[len(cursors)/2])
	if err != nil {
		r.note("list: EXPLAIN ANALYZE failed: %v", err)
	}
	res.set("explain", explain)
	return nil
}

var (
	executionTime = regexp.MustCompile(`Execution Time: ([0-9.]+) ms`)
	planningTime  = regexp.MustCompile(`Planning Time: ([0-9.]+) ms`)
)

// explainList runs EXPLAIN (ANALYZE, BUFFERS) of the service's own query
// for the first page and one in the middle of the list.
func (r *runner) explainList(ctx context.Context, buyer string, limit int, middle string) ([]map[string]any, error) {
	var out []map[string]any
	for _, q := range []struct{ page, cursor string }{{"first", ""}, {"middle", middle}} {
		lines, err := r.st.store.ExplainBuyerDeals(ctx, buyer, store.DealFilter{}, q.cursor, limit)
		if err != nil {
			return out, err
		}
		plan := strings.Join(lines, "\n")
		e := map[string]any{"page": q.page, "plan": plan, "execution_ms": 0.0, "planning_ms": 0.0}
		if m := executionTime.FindStringSubmatch(plan); m != nil {
			e["execution_ms"], _ = strconv.ParseFloat(m[1], 64)
		}
		if m := planningTime.FindStringSubmatch(plan); m != nil {
			e["planning_ms"], _ = strconv.ParseFloat(m[1], 64)
		}
		out = append(out, e)
	}
	return out, nil
}

// concurrency: many keep-alive connections held open, an open-loop rate
// over them, 90 % buyers reading deals and 10 % sellers creating them;
// then the same load with the delivery side stopped.
func (r *runner) concurrency(ctx context.Context, res *Result) error {
	res.Goal = "errors = 0 and p99_ms <= 150"
	conns, rate := r.cfg.ConcurrencyConns, r.cfg.ConcurrencyRate
	sd, err := r.st.seed(ctx, 10, 100, 1000, nil)
	if err != nil {
		return err
	}
	buyerTokens, err := r.st.tokens(store.RoleBuyer, sd.buyers)
	if err != nil {
		return err
	}
	sellerTokens, err := r.st.tokens(store.RoleSeller, sd.sellers)
	if err != nil {
		return err
	}
	body := draftBody(2)
	hc := newClient(conns)
	defer hc.CloseIdleConnections()
	if err := r.st.openConnections(ctx, hc, conns); err != nil {
		return fmt.Errorf("opening %d connections: %w", conns, err)
	}
	r.st.peakConns.Store(r.st.openConns.Load())
	res.set("open_conns_start", r.st.openConns.Load())
	// Every token's account is looked up once, outside the measurement.
	var warm []vegeta.Target
	for i, tok := range buyerTokens {
		warm = append(warm, r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[i%len(sd.deals)], tok, nil))
	}
	for _, tok := range sellerTokens {
		warm = append(warm, r.st.target(http.MethodPost, "/v1/deals", tok, body))
	}
	if err := count(ctx, hc, len(warm), 8, targets(warm...)); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	var sent, writes atomic.Int64
	tr := func(t *vegeta.Target) error {
		// Every tenth request is a write, spread evenly over the run.
		if sent.Add(1)%10 != 0 {
			*t = r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[rand.IntN(len(sd.deals))], buyerTokens[rand.IntN(len(buyerTokens))], nil)
		} else {
			writes.Add(1)
			*t = r.st.target(http.MethodPost, "/v1/deals", sellerTokens[rand.IntN(len(sellerTokens))], body)
		}
		return nil
	}
	stop := r.measure(ctx, "concurrency", res)
	l := openLoop(ctx, hc, rate, r.cfg.duration(), tr, nil)
	stop()
	if undispatched, running, err := r.st.backlog(ctx); err != nil {
		r.note("concurrency: counting the delivery backlog: %v", err)
	} else {
		res.set("outstanding", map[string]any{"undispatched_events": undispatched, "running_workflows": running})
	}
	if err := l.err(); err != nil {
		r.log.Warn("bench: requests failed", "err", err)
	}
	res.set("requests", l.Requests, "errors", l.errors, "seconds", l.secs(), "api_rps", l.rps(), "target_rps", rate,
		"reads", int64(l.Requests)-writes.Load(), "writes", writes.Load(), "connections", conns, "open_conns_peak", r.st.peakConns.Load())
	// Failed requests count in the latency too: a timeout is the slowest answer.
	res.latency(l.Latencies)
	res.Met = l.errors == 0 && res.P99Ms <= 150 && l.Requests > 0
	res.Figure = fmt.Sprintf("%d errors, p99 %.1f ms, %.0f of %d rps", l.errors, res.P99Ms, l.rps(), rate)
	res.set("without_delivery", r.withoutDelivery(ctx, 0, func() *load { return openLoop(ctx, hc, rate, r.cfg.duration(), tr, nil) }))
	return nil
}
