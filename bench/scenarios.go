package bench

import (
	"bytes"
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/dealcast/dealcast/internal/cpuclock"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
)

// warmUp is how long read and write load runs unmeasured first: enough to
// open the connections, fill the token-account cache and prepare the
// statements of every pooled database connection.
func (r *runner) warmUp() time.Duration { return min(2*time.Second, r.cfg.duration()) }

// read: GET /v1/deals/{id} by authorised buyers, beside pgbench -S.
func (r *runner) read(ctx context.Context) (*ReadWriteResult, error) {
	c := r.cfg.Read
	res := &ReadWriteResult{Common: Common{Goal: "ratio = api_rps / pgbench_tps >= 0.7"}, Connections: c.Conns}
	sellers, err := r.st.accounts(ctx, store.RoleSeller, c.Sellers)
	if err != nil {
		return res, err
	}
	buyers, err := r.st.accounts(ctx, store.RoleBuyer, c.Conns)
	if err != nil {
		return res, err
	}
	if err := r.st.grantAll(ctx, sellers, buyers); err != nil {
		return res, err
	}
	deals, err := r.st.deals(ctx, sellers, c.Deals)
	if err != nil {
		return res, err
	}
	if err := r.st.analyze(ctx); err != nil {
		return res, err
	}
	tokens, err := r.st.tokens(store.RoleBuyer, buyers)
	if err != nil {
		return res, err
	}
	cl := newClient(r.st.BaseURL, c.Conns)
	defer cl.Close()
	send := func(ctx context.Context, w int) error {
		return cl.Do(ctx, http.MethodGet, "/v1/deals/"+deals[rand.IntN(len(deals))], tokens[w], nil, http.StatusOK, nil)
	}
	if err := r.baseline(ctx, "-S", res); err != nil {
		return res, err
	}
	var warm Tally
	closedLoop(ctx, c.Conns, r.warmUp(), &warm, send)
	if _, n := warm.Errors(); n > 0 {
		return res, fmt.Errorf("warm-up: %d of %d requests failed, first: %s", n, warm.Requests(), warm.FirstError())
	}
	stop := r.profile(ScenarioRead)
	var t Tally
	elapsed := closedLoop(ctx, c.Conns, r.cfg.duration(), &t, send)
	stop()
	r.fillReadWrite(res, &t, elapsed)
	res.Floor = r.httpFloor(ctx, cl, c.Conns, res.PgbenchTPS)
	res.DBFloor = dbFloor(res, runtime.NumCPU())
	return res, nil
}

// httpFloor runs the scenario's closed loop once more, on GET /healthz:
// through the same server, instrumentation and client, without
// authentication, database or JSON. Its rate is the ceiling the
// scenario's API rate approaches as the service's own work shrinks.
func (r *runner) httpFloor(ctx context.Context, cl *Client, conns int, pgbenchTPS float64) *Floor {
	send := func(ctx context.Context, _ int) error {
		return cl.Do(ctx, http.MethodGet, "/healthz", "", nil, http.StatusOK, nil)
	}
	var t Tally
	busy := cpuclock.MachineBusy()
	elapsed := closedLoop(ctx, conns, r.cfg.duration(), &t, send)
	busy = cpuclock.MachineBusy() - busy
	_, errs := t.Errors()
	s := t.Latency.Summary()
	f := &Floor{Path: "/healthz", Requests: t.Requests(), Errors: errs,
		RPS: round(perSecond(t.Requests()-errs, elapsed)), P50Ms: round(s.P50), P99Ms: round(s.P99)}
	if n := t.Requests(); n > 0 {
		f.MachineCPUUs = round(busy / float64(n) * 1e6)
	}
	if pgbenchTPS > 0 {
		f.Ratio = round(f.RPS / pgbenchTPS)
	}
	return f
}

// write: POST /v1/deals (the deal and its event in one statement), one
// seller per connection, beside pgbench -N. Each deal also starts a
// delivery workflow (its seller has no buyers, so it sends nothing); then
// the same load runs once more with the delivery side stopped.
func (r *runner) write(ctx context.Context) (*ReadWriteResult, error) {
	c := r.cfg.Write
	res := &ReadWriteResult{Common: Common{Goal: "ratio = api_rps / pgbench_tps >= 0.7"}, Connections: c.Conns}
	sellers, err := r.st.accounts(ctx, store.RoleSeller, c.Conns)
	if err != nil {
		return res, err
	}
	tokens, err := r.st.tokens(store.RoleSeller, sellers)
	if err != nil {
		return res, err
	}
	body, err := draftBody(c.Items)
	if err != nil {
		return res, err
	}
	cl := newClient(r.st.BaseURL, c.Conns)
	defer cl.Close()
	send := func(ctx context.Context, w int) error {
		return cl.Do(ctx, http.MethodPost, "/v1/deals", tokens[w], body, http.StatusCreated, nil)
	}
	if err := r.baseline(ctx, "-N", res); err != nil {
		return res, err
	}
	// A few deals per connection warm up connections and statement
	// caches; their deliveries finish before the measurement starts.
	if err := warmEach(ctx, c.Conns, 5, send); err != nil {
		return res, err
	}
	if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
		r.note("write: warm-up deliveries still running at the start: %v", err)
	}
	// The floor first: after the writes, their delivery backlog would
	// still be draining beside it.
	res.Floor = r.httpFloor(ctx, cl, c.Conns, res.PgbenchTPS)
	wf, err := r.workflowFloor(ctx)
	if err != nil {
		r.note("write: no workflow floor: %v", err)
	}
	stop := r.profile(ScenarioWrite)
	var t Tally
	elapsed := closedLoop(ctx, c.Conns, r.cfg.duration(), &t, send)
	stop()
	res.Backlog = r.measureBacklog(ctx)
	r.fillReadWrite(res, &t, elapsed)
	res.DBFloor = dbFloor(res, runtime.NumCPU())
	withWorkflow(res.DBFloor, wf, res.PgbenchTPS, runtime.NumCPU())
	res.WithoutDelivery, err = r.withoutDelivery(ctx, func(t *Tally) time.Duration {
		return closedLoop(ctx, c.Conns, r.cfg.duration(), t, send)
	})
	if res.WithoutDelivery != nil && res.PgbenchTPS > 0 {
		res.WithoutDelivery.Ratio = round(res.WithoutDelivery.APIRPS / res.PgbenchTPS)
	}
	return res, err
}

// warmEach sends n requests on each of conns connections.
func warmEach(ctx context.Context, conns, n int, send func(ctx context.Context, worker int) error) error {
	var warm Tally
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				warm.record(0, send(ctx, w))
			}
		}()
	}
	wg.Wait()
	if _, failed := warm.Errors(); failed > 0 {
		return fmt.Errorf("warm-up: %d of %d requests failed, first: %s", failed, warm.Requests(), warm.FirstError())
	}
	return nil
}

// measureBacklog counts the delivery work a write load left behind and
// times its drain, with nothing else running.
func (r *runner) measureBacklog(ctx context.Context) *Backlog {
	undispatched, running, err := r.st.backlog(ctx)
	if err != nil {
		r.note("write: counting the delivery backlog: %v", err)
		return nil
	}
	b := &Backlog{Undispatched: undispatched, Running: running}
	took, err := r.st.drain(ctx, r.cfg.DrainTimeout)
	b.DrainSeconds, b.Drained = round(took.Seconds()), err == nil
	var leftUndispatched, leftRunning int64
	var backlog *BacklogError
	if errors.As(err, &backlog) {
		leftUndispatched, leftRunning = backlog.Undispatched, backlog.Running
	} else if err != nil {
		r.note("write: draining the delivery backlog: %v", err)
		return b
	}
	b.RunningAfter = leftRunning
	b.WorkflowsPerS = round(perSecond(int(undispatched+running-leftUndispatched-leftRunning), took))
	b.StartedPerS = round(perSecond(int(undispatched-leftUndispatched), took))
	// The drain was the wait: what is left is thrown away at once.
	r.skipDrain = !b.Drained
	return b
}

// draftBody is a new deal of n items.
func draftBody(n int) ([]byte, error) {
	items := make([]deal.Item, n)
	for i := range items {
		items[i] = deal.Item{ID: "sku-" + strconv.Itoa(i+1), Name: "Bench item " + strconv.Itoa(i+1), Price: 500}
	}
	return json.Marshal(deal.Draft{Name: "Bench deal", Items: items, TotalPrice: int64(500 * n), Currency: "GBP"})
}

// baseline runs pgbench beside the API for the same time.
func (r *runner) baseline(ctx context.Context, mode string, res *ReadWriteResult) error {
	if r.pgbench == nil {
		return nil
	}
	p := r.cfg.Pgbench
	busy := cpuclock.MachineBusy()
	b, err := r.pgbench.Run(ctx, mode, p.Clients, p.Jobs, r.cfg.duration())
	if err != nil {
		// The API is still measured; without a baseline there is no ratio.
		res.PgbenchError = err.Error()
		r.note("no pgbench %s baseline: %v", mode, err)
		return nil
	}
	if n := b.TPS * float64(b.Seconds); n > 0 {
		b.MachineCPUUs = round((cpuclock.MachineBusy() - busy) / n * 1e6)
	}
	res.Pgbench, res.PgbenchTPS = &b, round(b.TPS)
	return nil
}

// dbFloor is the rate at which this machine could answer if each request
// cost what one request of the HTTP floor and one pgbench transaction
// cost, in the whole machine's CPU: the ceiling of any endpoint that makes
// one database round trip as cheap as pgbench's own. It is a CPU ceiling:
// a phase that left cores idle still measured its cost per request.
func dbFloor(res *ReadWriteResult, cores int) *DBFloor {
	if res.Floor == nil || res.Pgbench == nil || res.Floor.MachineCPUUs <= 0 || res.Pgbench.MachineCPUUs <= 0 || res.PgbenchTPS <= 0 {
		return nil
	}
	per := res.Floor.MachineCPUUs + res.Pgbench.MachineCPUUs
	rps := float64(cores) * 1e6 / per
	return &DBFloor{HTTPCPUUs: res.Floor.MachineCPUUs, PgbenchCPUUs: res.Pgbench.MachineCPUUs,
		RPS: round(rps), Ratio: round(rps / res.PgbenchTPS)}
}

func (r *runner) fillReadWrite(res *ReadWriteResult, t *Tally, elapsed time.Duration) {
	kinds, errs := t.Errors()
	res.Requests, res.Errors, res.Seconds = t.Requests(), errs, round(elapsed.Seconds())
	if errs > 0 {
		res.ErrorKinds = kinds
		r.log.Warn("bench: requests failed", "errors", sortedKinds(kinds), "first", t.FirstError())
	}
	res.APIRPS = round(perSecond(res.Requests-errs, elapsed))
	if res.PgbenchTPS > 0 {
		res.Ratio = round(res.APIRPS / res.PgbenchTPS)
	}
	res.latency(t.Latency.Summary())
	res.Met = res.Ratio >= 0.7 && errs == 0
}

// list: one buyer, authorised by many sellers, pages through all their
// deals, newest first, from several connections at once.
func (r *runner) list(ctx context.Context) (*ListResult, error) {
	c := r.cfg.List
	res := &ListResult{Common: Common{Goal: "p99_ms <= 50; api_rps reported"},
		Deals: c.Deals, Sellers: c.Sellers, Limit: c.Limit, Connections: c.Conns}
	sellers, err := r.st.accounts(ctx, store.RoleSeller, c.Sellers)
	if err != nil {
		return res, err
	}
	buyers, err := r.st.accounts(ctx, store.RoleBuyer, 1)
	if err != nil {
		return res, err
	}
	if err := r.st.grantAll(ctx, sellers, buyers); err != nil {
		return res, err
	}
	if _, err := r.st.deals(ctx, sellers, c.Deals); err != nil {
		return res, err
	}
	if err := r.st.analyze(ctx); err != nil {
		return res, err
	}
	token, err := r.st.token(store.RoleBuyer, buyers[0])
	if err != nil {
		return res, err
	}
	cl := newClient(r.st.BaseURL, c.Conns)
	defer cl.Close()
	cursors := make([]string, c.Conns)
	var passes atomic.Int64
	send := func(ctx context.Context, w int) error {
		path := "/v1/deals?limit=" + strconv.Itoa(c.Limit)
		if cursors[w] != "" {
			path += "&cursor=" + url.QueryEscape(cursors[w])
		}
		next, err := cl.listPage(ctx, path, token)
		if err != nil {
			return err
		}
		if cursors[w] = next; next == "" {
			passes.Add(1)
		}
		return nil
	}
	var warm Tally
	closedLoop(ctx, c.Conns, min(time.Second, r.cfg.duration()), &warm, send)
	if _, n := warm.Errors(); n > 0 {
		return res, fmt.Errorf("warm-up: %d of %d requests failed, first: %s", n, warm.Requests(), warm.FirstError())
	}
	clear(cursors)
	passes.Store(0)
	stop := r.profile(ScenarioList)
	var t Tally
	elapsed := closedLoop(ctx, c.Conns, r.cfg.duration(), &t, send)
	stop()
	kinds, errs := t.Errors()
	res.Requests, res.Errors, res.Seconds = t.Requests(), errs, round(elapsed.Seconds())
	if errs > 0 {
		res.ErrorKinds = kinds
	}
	res.Pages = res.Requests - errs
	res.Passes = int(passes.Load())
	res.APIRPS = round(perSecond(res.Pages, elapsed))
	res.latency(t.Latency.Summary())
	res.Met = res.P99Ms <= 50 && errs == 0 && res.Pages > 0
	if res.Explain, err = r.explainList(ctx, buyers[0], c); err != nil {
		r.note("list: EXPLAIN ANALYZE failed: %v", err)
	}
	return res, nil
}

// listPage fetches one page of deals and returns its next_cursor. Only the
// cursor is decoded, and the page is not even scanned as JSON (a
// json.RawMessage is, twice: 15 % of the process's CPU in the list
// scenario): the load generator shares the CPU with the service.
func (c *Client) listPage(ctx context.Context, path, token string) (string, error) {
	var raw []byte
	if err := c.Do(ctx, http.MethodGet, path, token, nil, http.StatusOK, &raw); err != nil {
		return "", err
	}
	i := bytes.LastIndex(raw, []byte(`"next_cursor":`))
	if i < 0 {
		return "", errors.New("no next_cursor in the list response")
	}
	var next *string
	if err := json.Unmarshal(bytes.TrimSuffix(bytes.TrimSpace(raw[i+len(`"next_cursor":`):]), []byte("}")), &next); err != nil {
		return "", fmt.Errorf("next_cursor: %w", err)
	}
	if next == nil {
		return "", nil
	}
	return *next, nil
}

var (
	executionTime = regexp.MustCompile(`Execution Time: ([0-9.]+) ms`)
	planningTime  = regexp.MustCompile(`Planning Time: ([0-9.]+) ms`)
)

// explainList runs EXPLAIN (ANALYZE, BUFFERS) of the service's own query
// (store.BuyerDeals) for the buyer's first page and for a page in the
// middle of the list, reached by paging as a client does.
func (r *runner) explainList(ctx context.Context, buyer string, c ListConfig) ([]Explain, error) {
	middle := ""
	for range c.Deals / c.Limit / 2 {
		p, err := r.st.store.BuyerDeals(ctx, buyer, store.DealFilter{}, middle, c.Limit)
		if err != nil {
			return nil, err
		}
		if p.Next == "" {
			break
		}
		middle = p.Next
	}
	var out []Explain
	for _, q := range []struct{ page, cursor string }{{"first", ""}, {"middle", middle}} {
		lines, err := r.st.store.ExplainBuyerDeals(ctx, buyer, store.DealFilter{}, q.cursor, c.Limit)
		if err != nil {
			return out, err
		}
		plan := strings.Join(lines, "\n")
		e := Explain{Page: q.page, Plan: plan}
		if m := executionTime.FindStringSubmatch(plan); m != nil {
			e.ExecutionMs, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := planningTime.FindStringSubmatch(plan); m != nil {
			e.PlanningMs, _ = strconv.ParseFloat(m[1], 64)
		}
		out = append(out, e)
	}
	return out, nil
}

// concurrency: many keep-alive connections held open, an open-loop request
// rate over them, mostly buyers reading deals and some sellers creating
// them; then the same load once more with the delivery side stopped.
func (r *runner) concurrency(ctx context.Context) (*ConcurrencyResult, error) {
	c := r.cfg.Concurrency
	res := &ConcurrencyResult{Common: Common{Goal: "errors = 0 and p99_ms <= 150"}, TargetRPS: c.Rate, Connections: c.Conns}
	sellers, err := r.st.accounts(ctx, store.RoleSeller, 10)
	if err != nil {
		return res, err
	}
	buyers, err := r.st.accounts(ctx, store.RoleBuyer, 100)
	if err != nil {
		return res, err
	}
	if err := r.st.grantAll(ctx, sellers, buyers); err != nil {
		return res, err
	}
	deals, err := r.st.deals(ctx, sellers, 1000)
	if err != nil {
		return res, err
	}
	if err := r.st.analyze(ctx); err != nil {
		return res, err
	}
	buyerTokens, err := r.st.tokens(store.RoleBuyer, buyers)
	if err != nil {
		return res, err
	}
	sellerTokens, err := r.st.tokens(store.RoleSeller, sellers)
	if err != nil {
		return res, err
	}
	body, err := draftBody(2)
	if err != nil {
		return res, err
	}
	cl := newClient(r.st.BaseURL, c.Conns)
	defer cl.Close()
	if err := cl.openConnections(ctx, c.Conns); err != nil {
		return res, fmt.Errorf("opening %d connections: %w", c.Conns, err)
	}
	r.st.peakConns.Store(r.st.openConns.Load())
	res.OpenConnsStart = int(r.st.openConns.Load())
	// Every token's account is looked up once, outside the measurement.
	for i, tok := range buyerTokens {
		if err := cl.Do(ctx, http.MethodGet, "/v1/deals/"+deals[i%len(deals)], tok, nil, http.StatusOK, nil); err != nil {
			return res, fmt.Errorf("warm-up read: %w", err)
		}
	}
	for _, tok := range sellerTokens {
		if err := cl.Do(ctx, http.MethodPost, "/v1/deals", tok, body, http.StatusCreated, nil); err != nil {
			return res, fmt.Errorf("warm-up write: %w", err)
		}
	}
	var reads, writes atomic.Int64
	send := func(ctx context.Context, i int) error {
		if !isWrite(i, 1-c.ReadShare) {
			reads.Add(1)
			return cl.Do(ctx, http.MethodGet, "/v1/deals/"+deals[rand.IntN(len(deals))], buyerTokens[rand.IntN(len(buyerTokens))], nil, http.StatusOK, nil)
		}
		writes.Add(1)
		return cl.Do(ctx, http.MethodPost, "/v1/deals", sellerTokens[rand.IntN(len(sellerTokens))], body, http.StatusCreated, nil)
	}
	if wf, err := r.workflowFloor(ctx); err != nil {
		r.note("concurrency: no workflow floor: %v", err)
	} else if wf.MachineCPUUs > 0 {
		writesPerS := float64(c.Rate) * (1 - c.ReadShare)
		res.WorkflowFloorShare = round(writesPerS * wf.MachineCPUUs / 1e6 / float64(runtime.NumCPU()))
		res.FloorShare = floorShare(float64(c.Rate), c.ReadShare, r.res.Read, r.res.Write, wf.MachineCPUUs, runtime.NumCPU())
	}
	stop := r.profile(ScenarioConcurrency)
	var t Tally
	elapsed := openLoop(ctx, c.Rate, r.cfg.duration(), &t, send)
	stop()
	if undispatched, running, err := r.st.backlog(ctx); err != nil {
		r.note("concurrency: counting the delivery backlog: %v", err)
	} else {
		res.Outstanding = &Outstanding{Undispatched: undispatched, Running: running}
	}
	kinds, errs := t.Errors()
	res.Requests, res.Errors, res.Seconds = t.Requests(), errs, round(elapsed.Seconds())
	if errs > 0 {
		res.ErrorKinds = kinds
		r.log.Warn("bench: requests failed", "errors", sortedKinds(kinds), "first", t.FirstError())
	}
	res.Reads, res.Writes = int(reads.Load()), int(writes.Load())
	res.OpenConnsPeak = int(r.st.peakConns.Load())
	res.APIRPS = round(perSecond(res.Requests-errs, elapsed))
	// Failed requests count in the latency too: a timeout is the slowest answer.
	all := t.Latency.Summary()
	res.latency(all)
	res.Met = errs == 0 && res.P99Ms <= 150 && res.Requests > 0
	res.WithoutDelivery, err = r.withoutDelivery(ctx, func(t *Tally) time.Duration {
		return openLoop(ctx, c.Rate, r.cfg.duration(), t, send)
	})
	return res, err
}

// withoutDelivery runs load once more with the delivery side stopped,
// then starts a fresh one (the events written meanwhile are not
// delivered: no receiver waits for them). The scenario's own backlog is
// thrown away with the stopped side, as settle would after its timeout.
func (r *runner) withoutDelivery(ctx context.Context, load func(*Tally) time.Duration) (*PausedRun, error) {
	r.st.pauseDelivery()
	var t Tally
	elapsed := load(&t)
	if err := r.st.resumeDelivery(ctx); err != nil {
		return nil, fmt.Errorf("restarting the delivery side: %w", err)
	}
	_, errs := t.Errors()
	s := t.Latency.Summary()
	return &PausedRun{Requests: t.Requests(), Errors: errs, APIRPS: round(perSecond(t.Requests()-errs, elapsed)),
		P50Ms: round(s.P50), P99Ms: round(s.P99), Seconds: round(elapsed.Seconds())}, nil
}

// isWrite spreads writes evenly over the request sequence so that any run,
// however short, has its share of them: request i is a write when it
// crosses the next multiple of 1/share. A coin toss per request left a
// 30-request run without a single write now and then.
func isWrite(i int, share float64) bool {
	return math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share)
}

// changer makes deal changes through the API and tells a tracker when
// each answer arrived.
type changer struct {
	cl     *Client
	token  string
	deals  []string
	prices []atomic.Int64
}

func newChanger(cl *Client, token string, deals []string) *changer {
	return &changer{cl: cl, token: token, deals: deals, prices: make([]atomic.Int64, len(deals))}
}

// change sets a new price on deal i mod len(deals), which always changes
// it, so every call makes one deal.updated event.
func (ch *changer) change(ctx context.Context, tr *Tracker, i int) error {
	k := i % len(ch.deals)
	p := 2000 + ch.prices[k].Add(1)
	body := fmt.Appendf(nil, `{"total_price":%d,"items":[{"id":"i1","name":"Item","price":%d}]}`, p, p)
	tr.started(time.Now())
	var out struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	if err := ch.cl.Do(ctx, http.MethodPatch, "/v1/deals/"+ch.deals[k], ch.token, body, http.StatusOK, &out); err != nil {
		return err
	}
	tr.sentChange(changeKey(out.ID, out.Version), time.Now())
	return nil
}

// webhookSetup is a seller whose buyers each have one endpoint on recv,
// with deals to change.
func (r *runner) webhookSetup(ctx context.Context, buyers, deals int, recv *Receivers) (*changer, error) {
	sellers, err := r.st.accounts(ctx, store.RoleSeller, 1)
	if err != nil {
		return nil, err
	}
	ids, err := r.st.deals(ctx, sellers, deals)
	if err != nil {
		return nil, err
	}
	bs, err := r.st.accounts(ctx, store.RoleBuyer, buyers)
	if err != nil {
		return nil, err
	}
	if err := r.st.grantAll(ctx, sellers, bs); err != nil {
		return nil, err
	}
	if err := r.st.endpoints(ctx, bs, recv.URLs(buyers)); err != nil {
		return nil, err
	}
	if err := r.st.analyze(ctx); err != nil {
		return nil, err
	}
	token, err := r.st.token(store.RoleSeller, sellers[0])
	if err != nil {
		return nil, err
	}
	return newChanger(newClient(r.st.BaseURL, 256), token, ids), nil
}

// warmWebhooks sends one change per deal and waits for its deliveries, so
// connections to the receivers are open and caches warm.
func (r *runner) warmWebhooks(ctx context.Context, ch *changer, recv *Receivers, buyers int) error {
	tr := newTracker()
	recv.Track(tr)
	for i := range ch.deals {
		if err := ch.change(ctx, tr, i); err != nil {
			return fmt.Errorf("warm-up change: %w", err)
		}
	}
	tr.wait(ctx, buyers, r.cfg.Grace)
	if d := tr.result(buyers); d.Lost > 0 {
		return fmt.Errorf("warm-up: %d of %d deliveries did not arrive within %v", d.Lost, d.Expected, r.cfg.Grace)
	}
	if _, err := r.st.drain(ctx, r.cfg.DrainTimeout); err != nil {
		r.note("webhook warm-up: %v", err)
	}
	return nil
}

// warmWebhookStack starts one receiver per buyer, seeds a seller with
// buyers, endpoints and deals, and warms delivery; closeAll undoes it.
func (r *runner) warmWebhookStack(ctx context.Context, buyers, deals int) (recv *Receivers, ch *changer, closeAll func(), err error) {
	recv, err = startReceivers(ctx, buyers)
	if err != nil {
		return nil, nil, nil, err
	}
	ch, err = r.webhookSetup(ctx, buyers, deals, recv)
	if err != nil {
		recv.Close()
		return nil, nil, nil, err
	}
	closeAll = func() { ch.cl.Close(); recv.Close() }
	if err := r.warmWebhooks(ctx, ch, recv, buyers); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return recv, ch, closeAll, nil
}

// webhookLatency: a steady change rate; each change is delivered to every
// buyer; latency is from the API's response to the receiver's arrival.
func (r *runner) webhookLatency(ctx context.Context) (*WebhookResult, error) {
	c := r.cfg.WebhookLatency
	res := &WebhookResult{Common: Common{Goal: "p50_ms <= 25, p99_ms <= 100, lost = 0"}, ChangeRate: c.Rate, Buyers: c.Buyers}
	recv, ch, closeAll, err := r.warmWebhookStack(ctx, c.Buyers, c.Deals)
	if err != nil {
		return res, err
	}
	defer closeAll()
	tr := newTracker()
	recv.Track(tr)
	stop := r.profile(ScenarioWebhookLatency)
	var t Tally
	elapsed := openLoop(ctx, c.Rate, r.cfg.duration(), &t, func(ctx context.Context, i int) error { return ch.change(ctx, tr, i) })
	tr.wait(ctx, c.Buyers, r.cfg.Grace)
	stop()
	d := tr.result(c.Buyers)
	_, res.ChangeErrors = t.Errors()
	res.Changes, res.Expected, res.Received = d.Changes, d.Expected, d.Received
	res.Lost, res.Duplicates, res.Unexpected, res.Early = d.Lost, d.Duplicates, d.Unexpected, d.Early
	res.Seconds = round(elapsed.Seconds())
	res.ChangeP99Ms = round(t.Latency.Summary().P99)
	res.latency(d.Latency)
	res.Met = res.P50Ms <= 25 && res.P99Ms <= 100 && res.Lost == 0 && res.ChangeErrors == 0 && res.Received > 0
	return res, nil
}

// webhookThroughput: the change rate grows step by step (every change to
// every buyer) until the p99 passes a second, deliveries fall behind or
// some are lost; the best step that kept up is the result.
func (r *runner) webhookThroughput(ctx context.Context) (*ThroughputResult, error) {
	c := r.cfg.WebhookThroughput
	res := &ThroughputResult{Common: Common{Goal: "deliveries_per_s >= 5000 with lost = 0"}, Buyers: c.Buyers, BestStep: -1}
	recv, ch, closeAll, err := r.warmWebhookStack(ctx, c.Buyers, c.Deals)
	if err != nil {
		return res, err
	}
	defer closeAll()
	stepTime := time.Duration(min(c.StepSeconds, r.cfg.Seconds)) * time.Second
	if res.PostFloor, err = r.postFloor(ctx, recv, c.Buyers, stepTime); err != nil {
		r.note("webhook_throughput: POST floor: %v", err)
	}
	stop := r.profile(ScenarioWebhookThroughput)
	defer stop()
	step := func(n int) ThroughputStep {
		tr := newTracker()
		recv.Track(tr)
		var t Tally
		busy0 := cpuclock.MachineBusy()
		elapsed := openLoop(ctx, n, stepTime, &t, func(ctx context.Context, i int) error { return ch.change(ctx, tr, i) })
		tr.wait(ctx, c.Buyers, r.cfg.Grace)
		busy := cpuclock.MachineBusy() - busy0
		d := tr.result(c.Buyers)
		_, changeErrs := t.Errors()
		s := ThroughputStep{
			ChangeRate: n, Offered: n * c.Buyers, Changes: d.Changes, ChangeErrors: changeErrs,
			Expected: d.Expected, Received: d.Received, Lost: d.Lost, Duplicates: d.Duplicates,
			P50Ms: round(d.Latency.P50), P99Ms: round(d.Latency.P99), Seconds: round(max(elapsed, d.Span).Seconds()),
		}
		s.DeliveriesPerS = round(perSecond(d.Received, max(elapsed, d.Span)))
		if d.Changes > 0 {
			s.MachineCPUUs = round(busy / float64(d.Changes) * 1e6)
		}
		s.KeptUp = s.DeliveriesPerS >= 0.9*float64(s.Offered) && s.Lost == 0 && changeErrs == 0
		r.log.Info("bench: throughput step", "changes_per_s", n, "offered", s.Offered, "delivered_per_s", s.DeliveriesPerS,
			"p99_ms", s.P99Ms, "lost", s.Lost, "kept_up", s.KeptUp)
		if changeErrs > 0 {
			kinds, _ := t.Errors()
			r.log.Warn("bench: throughput step: changes failed", "changes_per_s", n, "by_kind", kinds, "first", t.FirstError())
		}
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
			res.StopReason = reason
			bad = n
			break
		}
		good = n
		if k+1 < c.MaxSteps {
			drain(n)
		}
		rate = math.Ceil(rate * c.Factor)
	}
	// The doubling is coarse: the limit lies anywhere between the last
	// rate that held and the first that did not. Bisect a few times.
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
	if res.BestStep >= 0 {
		b := res.Steps[res.BestStep]
		res.DeliveriesPerS, res.Lost, res.Duplicates, res.P50Ms, res.P99Ms = b.DeliveriesPerS, b.Lost, b.Duplicates, b.P50Ms, b.P99Ms
	} else if len(res.Steps) > 0 {
		b := res.Steps[0]
		res.Lost, res.Duplicates, res.P50Ms, res.P99Ms = b.Lost, b.Duplicates, b.P50Ms, b.P99Ms
	}
	res.Met = res.DeliveriesPerS >= 5000 && res.Lost == 0 && res.BestStep >= 0
	return res, nil
}

// bisect returns the rate halfway between good (held) and bad (did not),
// or false when there is nothing to bisect or the two are within an
// eighth of good of each other.
func bisect(good, bad int) (int, bool) {
	if good <= 0 || bad <= good || bad-good <= max(1, good/8) {
		return 0, false
	}
	return (good + bad) / 2, true
}

// lostIn reports whether any step lost a delivery: then searching on
// would only measure a broken system.
func lostIn(steps []ThroughputStep) bool {
	for _, s := range steps {
		if s.Lost > 0 {
			return true
		}
	}
	return false
}

// stepStop says why the throughput search ends after step s, or "".
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
// with one endpoint spread over a few receiver servers; the figure is the
// time from the API's response to the last arrival.
func (r *runner) fanout(ctx context.Context) (*FanoutResult, error) {
	c := r.cfg.Fanout
	res := &FanoutResult{Common: Common{Goal: "seconds <= 5 to the last arrival, lost = 0"}, Buyers: c.Buyers, Receivers: c.Receivers}
	recv, err := startReceivers(ctx, c.Receivers)
	if err != nil {
		return res, err
	}
	defer recv.Close()
	ch, err := r.webhookSetup(ctx, c.Buyers, 1, recv)
	if err != nil {
		return res, err
	}
	defer ch.cl.Close()
	tr := newTracker()
	recv.Track(tr)
	stop := r.profile(ScenarioFanout)
	if err := ch.change(ctx, tr, 0); err != nil {
		stop()
		return res, err
	}
	tr.wait(ctx, c.Buyers, max(r.cfg.Grace, 2*time.Minute))
	stop()
	d := tr.result(c.Buyers)
	res.Expected, res.Received, res.Lost, res.Duplicates = d.Expected, d.Received, d.Lost, d.Duplicates
	res.Seconds = round(d.LastAfter.Seconds())
	res.PerS = round(perSecond(d.Received, d.LastAfter))
	res.latency(d.Latency)
	res.Met = res.Seconds <= 5 && res.Lost == 0 && res.Received > 0
	return res, nil
}
