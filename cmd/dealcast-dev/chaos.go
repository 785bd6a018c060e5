package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/store"
)

// runChaos is the fault run: a fresh database, an embedded Temporal server,
// two API and two worker processes of bin/dealcast, buyers with loopback
// receivers, and a steady load of deal changes and trades while a timeline
// of faults runs. It then waits for the auctions and deliveries to settle,
// counts per fault window every (event, endpoint) pair expected,
// delivered, duplicated and lost, and checks the trading in the database;
// it fails if a pair is lost or a trading check is violated.
func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	short := fs.Bool("short", false, "about two minutes of load with fewer faults (no PostgreSQL restart, no hanging receiver)")
	out := fs.String("out", "chaos/results.json", "where to write the results")
	bin := fs.String("bin", "bin/dealcast", "the product binary")
	rate := fs.Int("rate", 20, "requests a second: deal changes, purchases, auctions, bids")
	settle := fs.Duration("settle", 3*time.Minute, "the longest wait for auctions to close and deliveries to arrive after the load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logDir := filepath.Join(filepath.Dir(*out), "logs")
	_ = os.RemoveAll(logDir) // the logs of this run only
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dealcast-chaos-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	c := &chaos{rate: *rate, logDir: logDir, http: &http.Client{Timeout: 10 * time.Second}}
	dbURL := fmt.Sprintf("postgres://root@127.0.0.1:5432/dealcast_chaos_%d?sslmode=disable", rand.Uint32())
	if v := os.Getenv("CHAOS_DATABASE_URL"); v != "" {
		dbURL = v
	}
	if _, err := database.Prepare(ctx, dbURL, true); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := database.Drop(dctx, dbURL); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: drop database: %v\n", err)
		}
	}()
	c.jwtSecret, _ = randomKey()
	secretKey, _ := randomKey()
	temporalPort := freePort()
	c.temporal = &chaosProc{name: "temporal", logDir: logDir, path: self,
		args:  []string{"temporal", "--port", fmt.Sprint(temporalPort), "--data-dir", filepath.Join(tmp, "temporal")},
		ready: func(ctx context.Context) bool { return dialOK(ctx, fmt.Sprintf("127.0.0.1:%d", temporalPort)) }}
	defer c.stopAll()
	if err := c.temporal.start(ctx); err != nil {
		return err
	}
	env := []string{"DATABASE_URL=" + dbURL, fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", temporalPort),
		"DEALCAST_SECRET_KEY=" + secretKey, "DEALCAST_JWT_SECRET=" + c.jwtSecret, "DEALCAST_WEBHOOK_ALLOW_PRIVATE=true",
		"DEALCAST_RATE_LIMIT_RPS=0", "TEMPORAL_GRPC_COMPRESSION=none", "DEALCAST_DATA_DIR=" + filepath.Join(tmp, "data")}
	for i, role := range []string{"api", "api", "worker", "worker"} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort())
		p := &chaosProc{name: fmt.Sprintf("%s-%d", role, i%2), logDir: logDir, path: *bin, args: []string{role},
			env: append(append([]string{}, env...), "DEALCAST_HTTP_ADDR="+addr), ready: c.readyz("http://" + addr + "/readyz")}
		if role == "api" {
			c.apis = append(c.apis, p)
			c.apiURLs = append(c.apiURLs, "http://"+addr)
		} else {
			c.workers = append(c.workers, p)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range append(append([]*chaosProc{}, c.apis...), c.workers...) {
		g.Go(func() error { return p.start(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	c.recv = newChaosReceiver()
	if err := c.recv.listen(); err != nil {
		return err
	}
	defer c.recv.srv.Close()
	if err := c.setup(ctx, 6); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	fmt.Fprintf(os.Stderr, "chaos: %d APIs, %d workers, Temporal on :%d; logs in %s\n", len(c.apis), len(c.workers), temporalPort, logDir)

	// The load runs until the timeline is over.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { c.load(loadCtx); close(loadDone) }()
	runErr := c.timeline(ctx, c.faults(*short))
	stopLoad()
	<-loadDone
	if runErr != nil {
		return runErr
	}
	res, err := c.settle(ctx, pool, *settle)
	if err != nil {
		return err
	}
	res.Short = *short
	c.mu.Lock()
	told := c.told
	for _, op := range chaosOpOrder {
		if o := c.ops[op]; o != nil {
			res.Requests = append(res.Requests, *o)
		}
	}
	c.mu.Unlock()
	if res.Trading, err = checkTrading(ctx, pool, c.sellerID, told); err != nil {
		return fmt.Errorf("trading checks: %w", err)
	}
	res.print(os.Stdout)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "chaos: wrote %s\n", *out)
	if res.Total.Lost > 0 {
		return fmt.Errorf("%d (event, endpoint) pairs lost", res.Total.Lost)
	}
	if n := res.Trading.Violations.total(); n > 0 {
		return fmt.Errorf("%d violations of the trading checks", n)
	}
	return nil
}

type chaos struct {
	rate      int
	logDir    string
	http      *http.Client
	jwtSecret string
	temporal  *chaosProc
	apis      []*chaosProc
	workers   []*chaosProc
	apiURLs   []string
	recv      *chaosReceiver
	sellerID  string
	sellerTok string
	buyers    []chaosBuyer
	next      atomic.Uint64 // round robin over the APIs

	mu      sync.Mutex
	idle    []*chaosDeal    // available deals no request or auction holds
	live    []*chaosAuction // auctions not yet seen ended
	acks    []time.Time     // each change acknowledged with 2xx
	retries []time.Time     // each request retried after a connection error or 5xx
	windows []chaosWindow
	ops     map[string]*chaosOps
	told    chaosTold
}

type chaosDeal struct {
	id      string
	version int
}

type chaosBuyer struct{ id, token string }

type chaosWindow struct {
	Name       string    `json:"name"`
	Start, End time.Time `json:"-"`
}

// chaosProc is one child process that chaos can kill and start again.
type chaosProc struct {
	name, path, logDir string
	args, env          []string
	ready              func(context.Context) bool
	mu                 sync.Mutex
	cmd                *exec.Cmd
	done               chan struct{}
}

func (p *chaosProc) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	log, err := os.OpenFile(filepath.Join(p.logDir, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a terminal's ^C reaches only chaos, which
	// then stops every child itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	deadline := time.Now().Add(90 * time.Second)
	for !p.ready(ctx) {
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting (see %s.log)", p.name, p.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 90 s (see %s.log)", p.name, p.name)
		}
	}
	return nil
}

// stop sends sig and waits for the exit, with SIGKILL after 25 s.
func (p *chaosProc) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *chaosProc) restart(ctx context.Context, sig syscall.Signal, pause time.Duration) error {
	p.stop(sig)
	sleepCtx(ctx, pause)
	var err error
	for range 5 { // a port may linger for a moment after a kill
		if err = p.start(ctx); err == nil || ctx.Err() != nil {
			return err
		}
		sleepCtx(ctx, 2*time.Second)
	}
	return err
}

func (c *chaos) stopAll() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*chaosProc{}, c.apis...), c.workers...) {
		wg.Go(func() { p.stop(syscall.SIGTERM) })
	}
	wg.Wait()
	if c.temporal != nil {
		c.temporal.stop(syscall.SIGTERM)
	}
}

func (c *chaos) readyz(url string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.http.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

func dialOK(ctx context.Context, addr string) bool {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
	}
	return err == nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// chaosFault is one window of the timeline: act runs at its start.
type chaosFault struct {
	name string
	d    time.Duration
	act  func(ctx context.Context) error
}

func (c *chaos) faults(short bool) []chaosFault {
	kill := func(p func() *chaosProc) func(context.Context) error {
		return func(ctx context.Context) error { return p().restart(ctx, syscall.SIGKILL, 2*time.Second) }
	}
	receiver := func(path string, mode int32, d time.Duration) func(context.Context) error {
		return func(ctx context.Context) error {
			c.recv.mode(path).Store(mode)
			time.AfterFunc(d, func() { c.recv.mode(path).Store(recvOK) })
			return nil
		}
	}
	rolling := func(ctx context.Context) error {
		for _, p := range append(append([]*chaosProc{}, c.apis...), c.workers...) {
			if err := p.restart(ctx, syscall.SIGTERM, 0); err != nil {
				return err
			}
		}
		return nil
	}
	pgRestart := func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "sh", "-c",
			"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart").CombinedOutput()
		if err != nil {
			return fmt.Errorf("restart PostgreSQL: %v: %s", err, out)
		}
		return nil
	}
	none := func(context.Context) error { return nil }
	unavailable, hang := 30*time.Second, 20*time.Second
	if short {
		unavailable = 15 * time.Second
	}
	f := []chaosFault{
		{"steady", 10 * time.Second, none},
		{"kill -9 api-0", 20 * time.Second, kill(func() *chaosProc { return c.apis[0] })},
		{"kill -9 worker-0", 20 * time.Second, kill(func() *chaosProc { return c.workers[0] })},
		{"kill -9 temporal", 30 * time.Second, kill(func() *chaosProc { return c.temporal })},
		{"PostgreSQL restart", 30 * time.Second, pgRestart},
		{fmt.Sprintf("receiver 503 %v", unavailable), unavailable + 5*time.Second, receiver("/buyer-0", recv503, unavailable)},
		{fmt.Sprintf("receiver hangs %v", hang), hang + 5*time.Second, receiver("/buyer-1", recvHang, hang)},
		{"rolling restart", 40 * time.Second, rolling},
		{"steady", 10 * time.Second, none},
	}
	if short {
		f = append(f[:4:4], f[5], f[7], f[8]) // no PostgreSQL restart, no hanging receiver
		f[0].d, f[1].d, f[2].d, f[len(f)-1].d = 5*time.Second, 15*time.Second, 15*time.Second, 5*time.Second
	}
	return f
}

// timeline runs each fault in its window, one after another.
func (c *chaos) timeline(ctx context.Context, faults []chaosFault) error {
	for _, f := range faults {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "chaos: %s: %s\n", start.Format("15:04:05"), f.name)
		if err := f.act(ctx); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		sleepCtx(ctx, time.Until(start.Add(f.d)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.mu.Lock()
		c.windows = append(c.windows, chaosWindow{Name: f.name, Start: start, End: time.Now()})
		c.mu.Unlock()
	}
	return nil
}

// setup creates the seller, its endpoint, n buyers authorised with one
// endpoint each, and a first deal.
func (c *chaos) setup(ctx context.Context, n int) error {
	op, err := auth.Mint(c.jwtSecret, store.RoleOperator, "chaos", 2*time.Hour, auth.MintOptions{})
	if err != nil {
		return err
	}
	var seller struct{ ID string }
	if _, err := c.call(ctx, http.MethodPost, "/v1/sellers", op, map[string]string{"name": "Chaos Seller"}, &seller); err != nil {
		return err
	}
	c.sellerID = seller.ID
	c.sellerTok, _ = auth.Mint(c.jwtSecret, store.RoleSeller, seller.ID, 2*time.Hour, auth.MintOptions{})
	var ep struct{ ID string }
	if _, err := c.call(ctx, http.MethodPost, "/v1/webhook-endpoints", c.sellerTok, map[string]string{"url": c.recv.url + "/seller"}, &ep); err != nil {
		return err
	}
	c.recv.endpoints["/seller"] = ep.ID
	for i := range n {
		var buyer struct{ ID string }
		if _, err := c.call(ctx, http.MethodPost, "/v1/buyers", op, map[string]string{"name": fmt.Sprintf("Buyer %d", i)}, &buyer); err != nil {
			return err
		}
		if _, err := c.call(ctx, http.MethodPut, "/v1/sellers/"+seller.ID+"/buyers/"+buyer.ID, c.sellerTok, nil, nil); err != nil {
			return err
		}
		tok, _ := auth.Mint(c.jwtSecret, store.RoleBuyer, buyer.ID, 2*time.Hour, auth.MintOptions{})
		c.buyers = append(c.buyers, chaosBuyer{id: buyer.ID, token: tok})
		path := fmt.Sprintf("/buyer-%d", i)
		if _, err := c.call(ctx, http.MethodPost, "/v1/webhook-endpoints", tok, map[string]string{"url": c.recv.url + path}, &ep); err != nil {
			return err
		}
		c.recv.endpoints[path] = ep.ID
	}
	return nil
}

// load makes rate requests a second until ctx ends: deal creates and
// price changes, purchases, auctions and bids (step).
func (c *chaos) load(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(c.rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 4*c.rate)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // every request is stuck in retries: do not pile up more
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c.step(ctx, &wg)
		})
	}
}

// takeIdle removes a random idle deal from the pool for one request or
// auction; nil when none is idle.
func (c *chaos) takeIdle() *chaosDeal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle) == 0 {
		return nil
	}
	i := rand.IntN(len(c.idle))
	d := c.idle[i]
	c.idle[i] = c.idle[len(c.idle)-1]
	c.idle = c.idle[:len(c.idle)-1]
	return d
}

// release puts a deal back in the idle pool: it is available and nothing
// holds it.
func (c *chaos) release(d *chaosDeal) {
	c.mu.Lock()
	c.idle = append(c.idle, d)
	c.mu.Unlock()
}

func (c *chaos) ack() {
	c.mu.Lock()
	c.acks = append(c.acks, time.Now())
	c.mu.Unlock()
}

func (c *chaos) create(ctx context.Context) {
	key := uuid.NewString()
	price := 1000 + rand.IntN(9000)
	body := map[string]any{"name": "Chaos lot", "currency": "GBP", "total_price": price,
		"items": []map[string]any{{"id": "a", "name": "A", "price": price}}}
	var deal struct {
		ID      string
		Version int
	}
	if ok2xx(c.retry(ctx, opCreate, func() (int, error) {
		return c.call(ctx, http.MethodPost, "/v1/deals", c.sellerTok, body, &deal, "Idempotency-Key", key)
	})) {
		c.ack()
		c.release(&chaosDeal{id: deal.ID, version: deal.Version})
	}
}

// reprice changes an idle deal's price and puts it back.
func (c *chaos) reprice(ctx context.Context, d *chaosDeal) {
	defer c.release(d)
	price := 1000 + rand.IntN(9000)
	var deal struct{ Version int }
	ok := ok2xx(c.retry(ctx, opReprice, func() (int, error) {
		code, err := c.call(ctx, http.MethodPatch, "/v1/deals/"+d.id, c.sellerTok,
			map[string]any{"total_price": price, "items": []map[string]any{{"id": "a", "name": "A", "price": price}}},
			&deal, "If-Match", fmt.Sprintf(`"%d"`, d.version))
		if code == http.StatusPreconditionFailed {
			// An earlier attempt committed without its answer arriving:
			// read the version and change again.
			if code, err := c.call(ctx, http.MethodGet, "/v1/deals/"+d.id, c.sellerTok, nil, &deal); err == nil {
				d.version = deal.Version
			} else {
				return code, err
			}
			return http.StatusServiceUnavailable, err
		}
		return code, err
	}))
	if ok {
		d.version = deal.Version
		c.ack()
	}
}

// retry calls try until it answers 2xx or 4xx (other than 408 and 429)
// or a minute passes, alternating the APIs on connection errors and 5xx.
// It counts the outcome under op and returns the final status, or 0 when
// it gave up: then the change may or may not have been made.
func (c *chaos) retry(ctx context.Context, op string, try func() (int, error)) int {
	deadline := time.Now().Add(time.Minute)
	for wait := 250 * time.Millisecond; ctx.Err() == nil && time.Now().Before(deadline); wait = min(2*wait, 2*time.Second) {
		code, err := try()
		if err == nil {
			c.count(op, code)
			return code
		}
		if code >= 400 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout {
			if code != http.StatusConflict && code != http.StatusUnprocessableEntity {
				fmt.Fprintf(os.Stderr, "chaos: %s refused: %v\n", op, err)
			}
			c.count(op, code)
			return code
		}
		c.mu.Lock()
		c.retries = append(c.retries, time.Now())
		c.mu.Unlock()
		sleepCtx(ctx, wait)
	}
	c.count(op, 0)
	return 0
}

func ok2xx(code int) bool { return code >= 200 && code < 300 }

// call sends a JSON request to the next API and decodes its answer; it
// returns the status (0 without an answer) and an error unless it is 2xx.
func (c *chaos) call(ctx context.Context, method, path, token string, body, out any, headers ...string) (int, error) {
	base := c.apiURLs[c.next.Add(1)%uint64(len(c.apiURLs))]
	return apiCall(ctx, c.http, base, method, path, token, body, out, headers...)
}

// The modes of a receiver's path.
const (
	recvOK   int32 = iota
	recv503        // answers 503 Service Unavailable
	recvHang       // holds each request until the sender gives up
)

// chaosReceiver is the buyers' and the seller's webhook receiver: a path
// per endpoint, each counting the webhook-ids it acknowledged.
type chaosReceiver struct {
	srv       *http.Server
	url       string
	endpoints map[string]string // path → endpoint ID
	modes     sync.Map          // path → *atomic.Int32
	mu        sync.Mutex
	seen      map[string]int // webhook-id + " " + endpoint ID → 2xx answers
	refused   []time.Time    // each delivery answered 503 or held past the sender's timeout
}

func newChaosReceiver() *chaosReceiver {
	return &chaosReceiver{endpoints: map[string]string{}, seen: map[string]int{}}
}

func (r *chaosReceiver) mode(path string) *atomic.Int32 {
	m, _ := r.modes.LoadOrStore(path, new(atomic.Int32))
	return m.(*atomic.Int32)
}

func (r *chaosReceiver) listen() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.url = "http://" + ln.Addr().String()
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(r.serve)}
	go func() { _ = r.srv.Serve(ln) }()
	return nil
}

func (r *chaosReceiver) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	if m := r.mode(req.URL.Path).Load(); m != recvOK {
		for m == recvHang && r.mode(req.URL.Path).Load() == recvHang && req.Context().Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		// After a hang the sender has gone: this is no acknowledgement.
		w.WriteHeader(http.StatusServiceUnavailable)
		r.mu.Lock()
		r.refused = append(r.refused, time.Now())
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	r.seen[req.Header.Get("webhook-id")+" "+r.endpoints[req.URL.Path]]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// chaosCount is one row of the results.
type chaosCount struct {
	Window     string `json:"window"`
	Seconds    int    `json:"seconds"`
	Acked      int    `json:"changes_acknowledged"`
	Retried    int    `json:"requests_retried"`
	Events     int    `json:"events_committed"`
	Expected   int    `json:"pairs_expected"`
	Delivered  int    `json:"pairs_delivered"`
	Refused    int    `json:"deliveries_refused"`
	Duplicates int    `json:"duplicate_deliveries"`
	Lost       int    `json:"pairs_lost"`
}

type chaosResults struct {
	Short      bool         `json:"short"`
	SettledIn  string       `json:"settled_in"`
	Windows    []chaosCount `json:"windows"`
	Total      chaosCount   `json:"total"`
	ByType     []chaosCount `json:"by_event_type"`
	Unexpected int          `json:"unexpected_deliveries"`
	Requests   []chaosOps   `json:"requests"`
	Trading    chaosTrading `json:"trading"`
}

// chaosPair is one (event, endpoint) pair the database says must arrive.
type chaosPair struct {
	key string
	at  time.Time
	typ string
}

// chaosEvent is one committed event of the run.
type chaosEvent struct {
	at  time.Time
	typ string
}

// expectedPairs reads every committed event of the seller, each with every
// endpoint it must reach: the endpoints of the buyers the seller authorises
// for deal events, those of the named recipients for the others. Disabled
// endpoints count too: nothing in the run disables one.
func (c *chaos) expectedPairs(ctx context.Context, pool *pgxpool.Pool) (pairs []chaosPair, events map[string]chaosEvent, err error) {
	rows, err := pool.Query(ctx, `
		SELECT ev.id, ev.created_at, ev.type, we.id::TEXT
		FROM events ev
		LEFT JOIN (
		  SELECT ev.id AS event_id, we.id, we.event_types
		  FROM events ev
		  JOIN grants g ON g.seller_id = ev.seller_id
		  JOIN webhook_endpoints we ON we.buyer_id = g.buyer_id
		  WHERE NOT ev.named
		  UNION ALL
		  SELECT r.event_id, we.id, we.event_types
		  FROM event_recipients r
		  JOIN webhook_endpoints we ON we.buyer_id = r.account_id OR we.seller_id = r.account_id
		) we ON we.event_id = ev.id AND ev.type = ANY (we.event_types)
		WHERE ev.seller_id = $1`, c.sellerID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	events = map[string]chaosEvent{}
	for rows.Next() {
		var id, typ string
		var at time.Time
		var endpoint *string
		if err := rows.Scan(&id, &at, &typ, &endpoint); err != nil {
			return nil, nil, err
		}
		events[id] = chaosEvent{at: at, typ: typ}
		if endpoint != nil {
			pairs = append(pairs, chaosPair{key: id + " " + *endpoint, at: at, typ: typ})
		}
	}
	return pairs, events, rows.Err()
}

// settle waits up to max for every auction to end and every expected
// pair to arrive, then counts per window and per event type.
func (c *chaos) settle(ctx context.Context, pool *pgxpool.Pool, max time.Duration) (*chaosResults, error) {
	start := time.Now()
	fmt.Fprintf(os.Stderr, "chaos: %s: settling (up to %v)\n", start.Format("15:04:05"), max)
	var pairs []chaosPair
	var events map[string]chaosEvent
	for {
		// An auction still open will write its auction.closed (and maybe
		// a sale): count pairs once none is.
		var live int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM auctions WHERE seller_id = $1 AND status IN ('scheduled', 'open')`,
			c.sellerID).Scan(&live); err != nil {
			return nil, err
		}
		var err error
		if pairs, events, err = c.expectedPairs(ctx, pool); err != nil {
			return nil, err
		}
		missing := 0
		c.recv.mu.Lock()
		for _, p := range pairs {
			if c.recv.seen[p.key] == 0 {
				missing++
			}
		}
		c.recv.mu.Unlock()
		if missing == 0 && live == 0 || time.Since(start) > max || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, 2*time.Second)
	}
	res := &chaosResults{SettledIn: time.Since(start).Round(time.Second).String()}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recv.mu.Lock()
	defer c.recv.mu.Unlock()
	// A window is where its change happened; before the first and after
	// the last, the nearest window.
	window := func(at time.Time) int {
		for i, w := range c.windows {
			if at.Before(w.End) || i == len(c.windows)-1 {
				return i
			}
		}
		return 0
	}
	rows := make([]chaosCount, len(c.windows))
	for i, w := range c.windows {
		rows[i] = chaosCount{Window: w.Name, Seconds: int(w.End.Sub(w.Start).Round(time.Second).Seconds())}
	}
	for _, at := range c.acks {
		rows[window(at)].Acked++
	}
	for _, at := range c.retries {
		rows[window(at)].Retried++
	}
	for _, at := range c.recv.refused {
		rows[window(at)].Refused++
	}
	byType := map[string]*chaosCount{}
	typeRow := func(typ string) *chaosCount {
		if byType[typ] == nil {
			byType[typ] = &chaosCount{Window: typ}
		}
		return byType[typ]
	}
	for _, ev := range events {
		rows[window(ev.at)].Events++
		typeRow(ev.typ).Events++
	}
	expected := map[string]bool{}
	for _, p := range pairs {
		expected[p.key] = true
		for _, row := range []*chaosCount{&rows[window(p.at)], typeRow(p.typ)} {
			row.Expected++
			if n := c.recv.seen[p.key]; n > 0 {
				row.Delivered++
				row.Duplicates += n - 1
			} else {
				row.Lost++
			}
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(byType)) {
		res.ByType = append(res.ByType, *byType[typ])
	}
	for k := range c.recv.seen {
		if !expected[k] {
			res.Unexpected++
		}
	}
	res.Total.Window = "total"
	for _, r := range rows {
		res.Total.Seconds += r.Seconds
		res.Total.Acked += r.Acked
		res.Total.Retried += r.Retried
		res.Total.Events += r.Events
		res.Total.Expected += r.Expected
		res.Total.Delivered += r.Delivered
		res.Total.Refused += r.Refused
		res.Total.Duplicates += r.Duplicates
		res.Total.Lost += r.Lost
	}
	res.Windows = rows
	return res, nil
}

func (r *chaosResults) print(w io.Writer) {
	fmt.Fprintf(w, "\n%-22s %4s %6s %7s %6s %8s %7s %9s %5s %4s\n", "window", "s", "acked", "retried", "events", "expected", "refused", "delivered", "dupes", "lost")
	for _, row := range append(append([]chaosCount{}, r.Windows...), r.Total) {
		fmt.Fprintf(w, "%-22s %4d %6d %7d %6d %8d %7d %9d %5d %4d\n", row.Window, row.Seconds, row.Acked, row.Retried, row.Events, row.Expected, row.Refused, row.Delivered, row.Duplicates, row.Lost)
	}
	fmt.Fprintf(w, "retried: API requests repeated after a connection error or 5xx; refused: deliveries a receiver answered 503 or held\n")
	fmt.Fprintf(w, "settled %s after the load; deliveries of no expected pair: %d\n", r.SettledIn, r.Unexpected)
	fmt.Fprintf(w, "\n%-22s %6s %8s %9s %5s %4s\n", "event type", "events", "expected", "delivered", "dupes", "lost")
	for _, row := range r.ByType {
		fmt.Fprintf(w, "%-22s %6d %8d %9d %5d %4d\n", row.Window, row.Events, row.Expected, row.Delivered, row.Duplicates, row.Lost)
	}
	printOps(w, r.Requests)
	r.Trading.print(w)
}
