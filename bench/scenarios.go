package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
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
func (r *runner) read(ctx context.Context) (*Common, error) {
	c := r.cfg.Read
	res := &ReadWriteResult{Common: Common{Goal: rwGoal}, Connections: c.Conns}
	r.res.Read = res
	sd, err := r.st.seed(ctx, c.Sellers, c.Conns, c.Deals, nil)
	if err != nil {
		return &res.Common, err
	}
	tokens, err := r.st.tokens(store.RoleBuyer, sd.buyers)
	if err != nil {
		return &res.Common, err
	}
	hc := newClient(c.Conns)
	defer hc.CloseIdleConnections()
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[rand.IntN(len(sd.deals))], tokens[rand.IntN(len(tokens))], nil)
		return nil
	}
	r.baseline(ctx, "-S", res)
	if err := closedLoop(ctx, hc, c.Conns, r.warmUp(), tr).err(); err != nil {
		return &res.Common, fmt.Errorf("warm-up: %w", err)
	}
	stop := r.measure(ctx, "read", &res.Common)
	l := closedLoop(ctx, hc, c.Conns, r.cfg.duration(), tr)
	stop()
	r.fillReadWrite(res, l)
	res.Floor = r.httpFloor(ctx, hc, c.Conns, res.PgbenchTPS)
	res.DBFloor = dbFloor(res, runtime.NumCPU())
	return &res.Common, nil
}

// write: POST /v1/deals (the deal and its event in one statement, then a
// delivery workflow that sends nothing: the sellers have no buyers),
// beside pgbench -N; then once more with the delivery side stopped.
func (r *runner) write(ctx context.Context) (*Common, error) {
	c := r.cfg.Write
	res := &ReadWriteResult{Common: Common{Goal: rwGoal}, Connections: c.Conns}
	r.res.Write = res
	sellers, err := r.st.accounts(ctx, "sellers", c.Conns)
	if err != nil {
		return &res.Common, err
	}
	tokens, err := r.st.tokens(store.RoleSeller, sellers)
	if err != nil {
		return &res.Common, err
	}
	body := draftBody(c.Items)
	hc := newClient(c.Conns)
	defer hc.CloseIdleConnections()
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodPost, "/v1/deals", tokens[rand.IntN(len(tokens))], body)
		return nil
	}
	r.baseline(ctx, "-N", res)
	// A few deals per connection warm the caches; their deliveries
	// finish before the measurement starts.
	if err := count(ctx, hc, 5*c.Conns, c.Conns, tr); err != nil {
		return &res.Common, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
		r.note("write: warm-up deliveries still running at the start: %v", err)
	}
	// The floors first: after the writes their backlog would drain beside them.
	res.Floor = r.httpFloor(ctx, hc, c.Conns, res.PgbenchTPS)
	wf, err := r.workflowFloor(ctx)
	if err != nil {
		r.note("write: no workflow floor: %v", err)
	}
	stop := r.measure(ctx, "write", &res.Common)
	l := closedLoop(ctx, hc, c.Conns, r.cfg.duration(), tr)
	stop()
	res.Backlog = r.measureBacklog(ctx)
	r.fillReadWrite(res, l)
	res.DBFloor = dbFloor(res, runtime.NumCPU())
	withWorkflow(res.DBFloor, wf, res.PgbenchTPS, runtime.NumCPU())
	res.WithoutDelivery, err = r.withoutDelivery(ctx, res.PgbenchTPS, func() *load {
		return closedLoop(ctx, hc, c.Conns, r.cfg.duration(), tr)
	})
	return &res.Common, err
}

func draftBody(n int) []byte {
	items := make([]deal.Item, n)
	for i := range items {
		items[i] = deal.Item{ID: "sku-" + strconv.Itoa(i+1), Name: "Bench item " + strconv.Itoa(i+1), Price: 500}
	}
	b, _ := json.Marshal(deal.Draft{Name: "Bench deal", Items: items, TotalPrice: int64(500 * n), Currency: "GBP"})
	return b
}

// baseline runs pgbench beside the API for as long; without it the API is
// still measured, with no ratio.
func (r *runner) baseline(ctx context.Context, mode string, res *ReadWriteResult) {
	if r.pgbench == nil {
		return
	}
	p := r.cfg.Pgbench
	busy := machineBusy()
	b, err := r.pgbench.Run(ctx, mode, p.Clients, p.Jobs, r.cfg.duration())
	if err != nil {
		res.PgbenchError = err.Error()
		r.note("no pgbench %s baseline: %v", mode, err)
		return
	}
	if n := b.TPS * float64(b.Seconds); n > 0 {
		b.MachineCPUUs = round((machineBusy() - busy) / n * 1e6)
	}
	res.Pgbench, res.PgbenchTPS = &b, round(b.TPS)
}

// httpFloor runs the scenario's closed loop on GET /healthz: the same
// server, instrumentation and client without authentication, database or
// JSON. The scenario's rate approaches it as the service's work shrinks.
func (r *runner) httpFloor(ctx context.Context, hc *http.Client, conns int, pgbenchTPS float64) *Floor {
	busy := machineBusy()
	l := closedLoop(ctx, hc, conns, r.cfg.duration(), targets(r.st.target(http.MethodGet, "/healthz", "", nil)))
	busy = machineBusy() - busy
	f := &Floor{Path: "/healthz", Requests: int(l.Requests), Errors: l.errors, RPS: l.rps(),
		P50Ms: ms(l.Latencies.P50), P99Ms: ms(l.Latencies.P99), Ratio: ratio(l.rps(), pgbenchTPS)}
	if l.Requests > 0 {
		f.MachineCPUUs = round(busy / float64(l.Requests) * 1e6)
	}
	return f
}

func (r *runner) fillReadWrite(res *ReadWriteResult, l *load) {
	res.Requests, res.Errors, res.Seconds, res.APIRPS = int(l.Requests), l.errors, l.secs(), l.rps()
	if err := l.err(); err != nil {
		r.log.Warn("bench: requests failed", "err", err)
	}
	res.Ratio = ratio(res.APIRPS, res.PgbenchTPS)
	res.latency(l.Latencies)
	res.Met = res.Ratio >= 0.7 && res.Errors == 0
	res.Figure = fmt.Sprintf("ratio %.3f (%.0f rps / pgbench %.0f tps)", res.Ratio, res.APIRPS, res.PgbenchTPS)
}

// measureBacklog counts the delivery work a write load left and times its
// drain with nothing else running.
func (r *runner) measureBacklog(ctx context.Context) *Backlog {
	undispatched, running, err := r.st.backlog(ctx)
	if err != nil {
		r.note("write: counting the delivery backlog: %v", err)
		return nil
	}
	b := &Backlog{Undispatched: undispatched, Running: running}
	took, err := r.st.drain(ctx, r.cfg.DrainTimeout)
	b.DrainSeconds, b.Drained = round(took.Seconds()), err == nil
	var left BacklogError
	var timedOut *BacklogError
	switch {
	case errors.As(err, &timedOut):
		left = *timedOut
	case err != nil:
		r.note("write: draining the delivery backlog: %v", err)
		return b
	}
	b.RunningAfter = left.Running
	b.WorkflowsPerS = round(perSecond(int(undispatched+running-left.Undispatched-left.Running), took))
	b.StartedPerS = round(perSecond(int(undispatched-left.Undispatched), took))
	// The drain was the wait: what is left is thrown away at once.
	r.skipDrain = !b.Drained
	return b
}

// withoutDelivery runs load once more with the delivery side stopped, then
// starts a fresh one without the events written meanwhile.
func (r *runner) withoutDelivery(ctx context.Context, pgbenchTPS float64, run func() *load) (*PausedRun, error) {
	r.st.pauseDelivery()
	l := run()
	if err := r.st.resumeDelivery(ctx); err != nil {
		return nil, fmt.Errorf("restarting the delivery side: %w", err)
	}
	return l.paused(pgbenchTPS), nil
}

// list: one buyer, authorised by many sellers, pages through all their
// deals, newest first, from several connections, from the first page
// again after the last.
func (r *runner) list(ctx context.Context) (*Common, error) {
	c := r.cfg.List
	res := &ListResult{Common: Common{Goal: "p99_ms <= 50; api_rps reported"},
		Deals: c.Deals, Sellers: c.Sellers, Limit: c.Limit, Connections: c.Conns}
	r.res.List = res
	sd, err := r.st.seed(ctx, c.Sellers, 1, c.Deals, nil)
	if err != nil {
		return &res.Common, err
	}
	buyer := sd.buyers[0]
	token, err := r.st.token(store.RoleBuyer, buyer)
	if err != nil {
		return &res.Common, err
	}
	// Each page's cursor, as a client paging from the start would get it.
	cursors := []string{""}
	for {
		p, err := r.st.store.BuyerDeals(ctx, buyer, store.DealFilter{}, cursors[len(cursors)-1], c.Limit)
		if err != nil {
			return &res.Common, err
		}
		if p.Next == "" {
			break
		}
		cursors = append(cursors, p.Next)
	}
	pages := make([]vegeta.Target, len(cursors))
	for i, cur := range cursors {
		path := "/v1/deals?limit=" + strconv.Itoa(c.Limit)
		if cur != "" {
			path += "&cursor=" + url.QueryEscape(cur)
		}
		pages[i] = r.st.target(http.MethodGet, path, token, nil)
	}
	hc := newClient(c.Conns)
	defer hc.CloseIdleConnections()
	if err := closedLoop(ctx, hc, c.Conns, min(time.Second, r.cfg.duration()), targets(pages...)).err(); err != nil {
		return &res.Common, fmt.Errorf("warm-up: %w", err)
	}
	stop := r.measure(ctx, "list", &res.Common)
	l := closedLoop(ctx, hc, c.Conns, r.cfg.duration(), targets(pages...))
	stop()
	res.Requests, res.Errors, res.Seconds, res.Pages, res.APIRPS = int(l.Requests), l.errors, l.secs(), l.ok(), l.rps()
	res.Passes = res.Pages / len(pages)
	res.latency(l.Latencies)
	res.Met = res.P99Ms <= 50 && res.Errors == 0 && res.Pages > 0
	res.Figure = fmt.Sprintf("p99 %.1f ms, %.0f pages/s", res.P99Ms, res.APIRPS)
	if res.Explain, err = r.explainList(ctx, buyer, c.Limit, cursors[len(cursors)/2]); err != nil {
		r.note("list: EXPLAIN ANALYZE failed: %v", err)
	}
	return &res.Common, nil
}

var (
	executionTime = regexp.MustCompile(`Execution Time: ([0-9.]+) ms`)
	planningTime  = regexp.MustCompile(`Planning Time: ([0-9.]+) ms`)
)

// explainList runs EXPLAIN (ANALYZE, BUFFERS) of the service's own query
// for the first page and one in the middle of the list.
func (r *runner) explainList(ctx context.Context, buyer string, limit int, middle string) ([]Explain, error) {
	var out []Explain
	for _, q := range []struct{ page, cursor string }{{"first", ""}, {"middle", middle}} {
		lines, err := r.st.store.ExplainBuyerDeals(ctx, buyer, store.DealFilter{}, q.cursor, limit)
		if err != nil {
			return out, err
		}
		e := Explain{Page: q.page, Plan: strings.Join(lines, "\n")}
		if m := executionTime.FindStringSubmatch(e.Plan); m != nil {
			e.ExecutionMs, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := planningTime.FindStringSubmatch(e.Plan); m != nil {
			e.PlanningMs, _ = strconv.ParseFloat(m[1], 64)
		}
		out = append(out, e)
	}
	return out, nil
}

// concurrency: many keep-alive connections held open, an open-loop rate
// over them, mostly buyers reading deals, some sellers creating them;
// then the same load with the delivery side stopped.
func (r *runner) concurrency(ctx context.Context) (*Common, error) {
	c := r.cfg.Concurrency
	res := &ConcurrencyResult{Common: Common{Goal: "errors = 0 and p99_ms <= 150"}, TargetRPS: c.Rate, Connections: c.Conns}
	r.res.Concurrency = res
	sd, err := r.st.seed(ctx, 10, 100, 1000, nil)
	if err != nil {
		return &res.Common, err
	}
	buyerTokens, err := r.st.tokens(store.RoleBuyer, sd.buyers)
	if err != nil {
		return &res.Common, err
	}
	sellerTokens, err := r.st.tokens(store.RoleSeller, sd.sellers)
	if err != nil {
		return &res.Common, err
	}
	body := draftBody(2)
	hc := newClient(c.Conns)
	defer hc.CloseIdleConnections()
	if err := r.st.openConnections(ctx, hc, c.Conns); err != nil {
		return &res.Common, fmt.Errorf("opening %d connections: %w", c.Conns, err)
	}
	r.st.peakConns.Store(r.st.openConns.Load())
	res.OpenConnsStart = int(r.st.openConns.Load())
	// Every token's account is looked up once, outside the measurement.
	var warm []vegeta.Target
	for i, tok := range buyerTokens {
		warm = append(warm, r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[i%len(sd.deals)], tok, nil))
	}
	for _, tok := range sellerTokens {
		warm = append(warm, r.st.target(http.MethodPost, "/v1/deals", tok, body))
	}
	if err := count(ctx, hc, len(warm), 8, targets(warm...)); err != nil {
		return &res.Common, fmt.Errorf("warm-up: %w", err)
	}
	var sent, reads, writes atomic.Int64
	tr := func(t *vegeta.Target) error {
		if !isWrite(int(sent.Add(1)-1), 1-c.ReadShare) {
			reads.Add(1)
			*t = r.st.target(http.MethodGet, "/v1/deals/"+sd.deals[rand.IntN(len(sd.deals))], buyerTokens[rand.IntN(len(buyerTokens))], nil)
		} else {
			writes.Add(1)
			*t = r.st.target(http.MethodPost, "/v1/deals", sellerTokens[rand.IntN(len(sellerTokens))], body)
		}
		return nil
	}
	if wf, err := r.workflowFloor(ctx); err != nil {
		r.note("concurrency: no workflow floor: %v", err)
	} else if wf.MachineCPUUs > 0 {
		res.WorkflowFloorShare = round(float64(c.Rate) * (1 - c.ReadShare) * wf.MachineCPUUs / 1e6 / float64(runtime.NumCPU()))
		res.FloorShare = floorShare(float64(c.Rate), c.ReadShare, r.res.Read, r.res.Write, wf.MachineCPUUs, runtime.NumCPU())
	}
	stop := r.measure(ctx, "concurrency", &res.Common)
	l := openLoop(ctx, hc, c.Rate, r.cfg.duration(), tr, nil)
	stop()
	if undispatched, running, err := r.st.backlog(ctx); err != nil {
		r.note("concurrency: counting the delivery backlog: %v", err)
	} else {
		res.Outstanding = &Outstanding{Undispatched: undispatched, Running: running}
	}
	if err := l.err(); err != nil {
		r.log.Warn("bench: requests failed", "err", err)
	}
	res.Requests, res.Errors, res.Seconds, res.APIRPS = int(l.Requests), l.errors, l.secs(), l.rps()
	res.Reads, res.Writes = int(reads.Load()), int(writes.Load())
	res.OpenConnsPeak = int(r.st.peakConns.Load())
	// Failed requests count in the latency too: a timeout is the slowest answer.
	res.latency(l.Latencies)
	res.Met = res.Errors == 0 && res.P99Ms <= 150 && res.Requests > 0
	res.Figure = fmt.Sprintf("%d errors, p99 %.1f ms, %.0f of %d rps", res.Errors, res.P99Ms, res.APIRPS, c.Rate)
	res.WithoutDelivery, err = r.withoutDelivery(ctx, 0, func() *load { return openLoop(ctx, hc, c.Rate, r.cfg.duration(), tr, nil) })
	return &res.Common, err
}

// isWrite spreads writes evenly over the request sequence, so that even a
// run of a few dozen requests has its share: request i is a write when it
// crosses the next multiple of 1/share.
func isWrite(i int, share float64) bool {
	return math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share)
}
