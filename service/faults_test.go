package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// The failure rows of docs/system-design.md §3.5 that a test reproduces
// here: the API process dying between commit and workflow start, the
// database going away in the middle of a delivery round, and the
// dispatcher's queue overflowing.

// A process killed between its commit and the workflow start loses the
// event it had queued in memory; the outbox row stays undispatched, and
// another process's sweeper starts it. Every (event, endpoint) pair
// arrives exactly once, signed, and the events end dispatched.
func TestAPIKilledBeforeStartIsSweptAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	s := newSweptStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyers := s.buyers(seller, sellerTok, 3)

	// The process that dies: its dispatcher is never run, so what the
	// API queues on it goes down with it.
	dying := delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue})
	s.swapDelivery(dying)
	const deals = 5
	first := s.createDeal(sellerTok, 100)
	s.setPrice(sellerTok, first.ID, 150)
	for i := range deals - 1 {
		s.createDeal(sellerTok, int64(200+i))
	}
	const events = deals + 1
	want := s.undispatchedIDs(t)
	if len(want) != events {
		t.Fatalf("%d events undispatched after the crash, want %d", len(want), events)
	}
	time.Sleep(300 * time.Millisecond)
	for i, b := range buyers {
		if n := len(b.r.Arrivals()); n != 0 {
			t.Fatalf("buyer %d got %d deliveries that nothing started", i, n)
		}
	}

	// The process that takes over sweeps the outbox as production does,
	// with a shorter grace.
	survivor := delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { survivor.Sweep(ctx, 100*time.Millisecond, 300*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Later sweeps must not start the events again.
	everyPairOnce(t, s, buyers, want, 500*time.Millisecond)
	if left := s.undispatchedIDs(t); len(left) != 0 {
		t.Fatalf("%d events still undispatched after the sweep", len(left))
	}
}

// The worker's database goes away while a round is in flight: the first
// request reaches its receiver, then every connection of the worker's pool
// is cut and new ones are refused for a while, so the round cannot record
// its outcomes. Temporal retries the activity until the database is back;
// every pair arrives, the pairs of the cut page again (counted, allowed),
// and every delivery ends succeeded in the log.
func TestDatabaseCutMidRoundStillDeliversEveryPair(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	proxy := newDBProxy(t, testDB.URL)
	pool, err := database.Open(context.Background(), proxy.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the worker's stop, registered below
	// The worker now reaches the database through the proxy; the API
	// still writes directly.
	s.worker.Stop()
	acts := *s.acts
	acts.Store = store.New(pool)
	s.acts = &acts
	s.startWorker()

	const outage = 2 * time.Second
	var (
		cutOnce sync.Once
		cutPair atomic.Value // endpoint path and event ID of the request that cut the database
	)
	cut := webhooktest.WithOnArrival(func(a webhooktest.Arrival) {
		cutOnce.Do(func() {
			cutPair.Store(a.Path + " " + a.ID())
			proxy.cut()
			time.AfterFunc(outage, proxy.restore)
		})
	})
	seller, sellerTok := s.account(store.RoleSeller)
	buyers := s.buyers(seller, sellerTok, 3, cut)
	const deals = 4
	for i := range deals {
		s.createDeal(sellerTok, int64(100+i))
	}

	eventually(t, 25*time.Second, "every (event, endpoint) pair", func() bool {
		for _, b := range buyers {
			if len(b.arrivals(t)) < deals {
				return false
			}
		}
		return true
	})
	for _, b := range buyers {
		b.wantLog(t, s, deals)
	}
	if proxy.cuts.Load() == 0 {
		t.Fatal("the database was never cut")
	}
	duplicates, cutArrivals := 0, 0
	for i, b := range buyers {
		got := b.arrivals(t)
		if len(got) != deals {
			t.Fatalf("buyer %d got %d distinct events, want %d", i, len(got), deals)
		}
		for id, n := range got {
			duplicates += n - 1
			if cutPair.Load() == b.path+" "+id {
				cutArrivals = n
			}
		}
	}
	// The page whose request cut the database could not record its
	// outcomes: its retry sent it again.
	if cutArrivals < 2 {
		t.Fatalf("the pair that arrived when the database was cut arrived %d times, want a resend after the outage", cutArrivals)
	}
	t.Logf("%d pairs, %d duplicate requests, %d connections refused during the outage",
		len(buyers)*deals, duplicates, proxy.refused.Load())
}

// A burst of changes overflows a dispatcher whose queue holds one event:
// the API does not block, the overflow is counted, and the events beyond
// the queue stay in the outbox until the sweeper starts them. Every pair
// arrives exactly once.
func TestFullDispatchQueueLeavesTheRestToTheSweeper(t *testing.T) {
	t.Parallel()
	s := newSweptStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyers := s.buyers(seller, sellerTok, 3)

	logs := &warnings{}
	small := delivery.NewDispatcher(s.client, s.store, slog.New(logs), delivery.Options{TaskQueue: s.taskQueue, Queue: 1})
	s.swapDelivery(small)
	const deals = 12
	var wg sync.WaitGroup
	for i := range deals {
		wg.Add(1)
		go func() { defer wg.Done(); s.createDeal(sellerTok, int64(100+i)) }()
	}
	wg.Wait()
	want := s.undispatchedIDs(t)
	if len(want) != deals {
		t.Fatalf("%d events undispatched after the burst, want %d", len(want), deals)
	}

	// The dispatcher starts the one event its queue held and reports the
	// others as overflow.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { small.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, "the queued event to be dispatched", func() bool {
		return len(s.undispatchedIDs(t)) == deals-1
	})
	eventually(t, 5*time.Second, "the overflow to be reported", func() bool { return logs.overflow() > 0 })
	if n := logs.overflow(); n != deals-1 {
		t.Fatalf("overflow reported %d events, want %d", n, deals-1)
	}

	// The sweeper starts the rest.
	n, err := s.dispatcher.SweepOnce(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != deals-1 {
		t.Fatalf("the sweep started %d events, want %d", n, deals-1)
	}
	if left := s.undispatchedIDs(t); len(left) != 0 {
		t.Fatalf("%d events still undispatched after the sweep", len(left))
	}
	everyPairOnce(t, s, buyers, want, 300*time.Millisecond)
}

// everyPairOnce waits until each buyer has every event of want, then, after
// settle (for late repeats to show), checks that each arrived exactly once,
// that no other event did, and that the buyer's delivery log agrees.
func everyPairOnce(t *testing.T, s *stack, buyers []buyer, want map[string]bool, settle time.Duration) {
	t.Helper()
	eventually(t, 20*time.Second, "every (event, endpoint) pair", func() bool {
		for _, b := range buyers {
			if len(b.arrivals(t)) < len(want) {
				return false
			}
		}
		return true
	})
	time.Sleep(settle)
	for i, b := range buyers {
		got := b.arrivals(t)
		for id, n := range got {
			if !want[id] || n != 1 {
				t.Fatalf("buyer %d got event %s %d times; want each expected event once and no other", i, id, n)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("buyer %d got %d events, want %d", i, len(got), len(want))
		}
		b.wantLog(t, s, len(want))
	}
}

// newSweptStack is a stack on a database of its own, for a test that
// sweeps the outbox: in the database the package's other tests share, a
// sweep would start their events too, on this test's task queue.
func newSweptStack(t *testing.T) *stack {
	t.Helper()
	db, err := dbtest.Create(context.Background(), "delivery_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return newStackOn(t, temporal.GetDefaultClient(), nil, db.Pool)
}

// undispatchedIDs returns the IDs of the events never marked dispatched.
func (s *stack) undispatchedIDs(t *testing.T) map[string]bool {
	t.Helper()
	evs, err := s.store.Undispatched(context.Background(), time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	return ids
}

// buyer is a buyer granted by the seller, with one endpoint at its own
// receiver.
type buyer struct {
	token, secret string
	path          string // the endpoint's URL path at the receiver
	r             *webhooktest.Receiver
}

// buyers makes n buyers the seller grants, each with an endpoint at a
// receiver programmed by opts.
func (s *stack) buyers(seller, sellerTok string, n int, opts ...webhooktest.Option) []buyer {
	s.t.Helper()
	out := make([]buyer, n)
	for i := range out {
		id, tok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, id)
		r := webhooktest.NewReceiver(s.t, opts...)
		path := fmt.Sprintf("/buyer-%d", i)
		_, secret := s.endpoint(tok, r.URL()+path)
		out[i] = buyer{token: tok, secret: secret, path: path, r: r}
	}
	return out
}

// arrivals counts the requests b's receiver got per event, failing the
// test on a signature that does not verify.
func (b buyer) arrivals(t *testing.T) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, a := range b.r.Arrivals() {
		if !webhooktest.Verify(b.secret, a) {
			t.Fatalf("signature %q of event %s does not verify", a.Signature(), a.ID())
		}
		got[a.ID()]++
	}
	return got
}

// wantLog waits for b's delivery log to hold n deliveries, every one
// succeeded.
func (b buyer) wantLog(t *testing.T, s *stack, n int) {
	t.Helper()
	var log struct {
		Data []struct {
			EventID string `json:"event_id"`
			Status  string `json:"status"`
		} `json:"data"`
	}
	ok := func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries?limit=100", b.token, nil, http.StatusOK, &log)
		if len(log.Data) != n {
			return false
		}
		for _, d := range log.Data {
			if d.Status != "succeeded" {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("delivery log %+v, want %d deliveries, all succeeded", log.Data, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dbProxy forwards loopback TCP connections to the database server until
// cut: then it closes every connection it carries and closes new ones at
// once, until restored.
type dbProxy struct {
	ln      net.Listener
	target  string
	url     string // the database URL, through the proxy
	down    atomic.Bool
	cuts    atomic.Int32
	refused atomic.Int32

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// newDBProxy starts a proxy to the server of dbURL and returns it with
// url set to dbURL through it; it stops when the test ends.
func newDBProxy(t *testing.T, dbURL string) *dbProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	u.Host = ln.Addr().String()
	p.url = u.String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.serve(&wg) }()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		wg.Wait()
	})
	return p
}

func (p *dbProxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if p.down.Load() {
			p.refused.Add(1)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.pipe(c) }()
	}
}

// pipe carries one client connection to the server until either side
// closes or the proxy is cut.
func (p *dbProxy) pipe(c net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, server) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, server); done <- struct{}{} }()
	<-done
	c.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track registers a connection pair, or closes it when the proxy was cut
// while it was being dialled.
func (p *dbProxy) track(c, server net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down.Load() {
		p.refused.Add(1)
		c.Close()
		server.Close()
		return false
	}
	p.conns[c], p.conns[server] = true, true
	return true
}

// cut makes the database unreachable: open connections break and new
// ones are closed as they arrive.
func (p *dbProxy) cut() {
	p.mu.Lock()
	p.down.Store(true)
	p.mu.Unlock()
	p.cuts.Add(1)
	p.closeAll()
}

// restore lets new connections through again.
func (p *dbProxy) restore() { p.down.Store(false) }

func (p *dbProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// warnings is a slog handler that keeps the dispatcher's overflow
// reports.
type warnings struct {
	mu       sync.Mutex
	overflew int64
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnings) WithGroup(string) slog.Handler            { return w }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "dispatch queue full; the sweeper will start these events" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "count" {
			w.mu.Lock()
			w.overflew += a.Value.Int64()
			w.mu.Unlock()
		}
		return true
	})
	return nil
}

// overflow is the number of events reported as overflow so far.
func (w *warnings) overflow() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overflew
}
