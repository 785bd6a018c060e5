package service_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
	"github.com/dealcast/dealcast/workflows"
)

func TestDealChangesReachOnlyAuthorisedBuyers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	granted, grantedTok := s.account(store.RoleBuyer)
	_, strangerTok := s.account(store.RoleBuyer)
	revoked, revokedTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, granted)
	s.grant(seller, sellerTok, revoked)
	s.revoke(seller, sellerTok, revoked)

	rGranted, rStranger, rRevoked := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	_, secret := s.endpoint(grantedTok, rGranted.URL())
	s.endpoint(strangerTok, rStranger.URL())
	s.endpoint(revokedTok, rRevoked.URL())

	d := s.createDeal(sellerTok, 1000)
	s.setPrice(sellerTok, d.ID, 800)
	eventually(t, 10*time.Second, "two events at the granted buyer", func() bool { return len(rGranted.Arrivals()) >= 2 })

	byType := map[string]deliveredEvent{}
	for _, a := range rGranted.Arrivals() {
		if !webhooktest.Verify(secret, a) {
			t.Fatalf("signature %q does not verify", a.Signature())
		}
		ts, err := strconv.ParseInt(a.Timestamp(), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
			t.Fatalf("webhook-timestamp %q is not recent unix seconds", a.Timestamp())
		}
		ev := decodeEvent(t, a)
		if ev.ID != a.ID() {
			t.Fatalf("webhook-id %q differs from the event id %q", a.ID(), ev.ID)
		}
		byType[ev.Type] = ev
	}
	created, updated := byType["deal.created"], byType["deal.updated"]
	if created.Data.Deal.ID != d.ID || created.Data.Deal.Version != 1 || created.Data.Previous != nil {
		t.Fatalf("deal.created: %+v", created)
	}
	if updated.Data.Deal.TotalPrice != 800 || updated.Data.Deal.Version != 2 || updated.Data.Previous["total_price"] != float64(1000) {
		t.Fatalf("deal.updated: %+v", updated)
	}

	// Delivery to the granted buyer is done; the others had the same time
	// and more to receive nothing.
	time.Sleep(300 * time.Millisecond)
	if n := len(rStranger.Arrivals()) + len(rRevoked.Arrivals()); n != 0 {
		t.Fatalf("ungranted or revoked buyers received %d requests", n)
	}

	var log struct {
		Data []struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
			Code     *int   `json:"last_status_code"`
		} `json:"data"`
	}
	eventually(t, 5*time.Second, "the delivery log", func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries", grantedTok, nil, http.StatusOK, &log)
		return len(log.Data) == 2
	})
	for _, d := range log.Data {
		if d.Status != "succeeded" || d.Attempts != 1 || d.Code == nil || *d.Code != 200 {
			t.Fatalf("delivery log entry %+v", d)
		}
	}
}

func TestFailingReceiverGetsTheEventWithTheSameID(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	// Fails twice (a 500, then a 503 asking for one second), then accepts.
	r := webhooktest.NewReceiver(t, webhooktest.WithStatus(func(n int) int {
		switch n {
		case 1:
			return http.StatusInternalServerError
		case 2:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}))
	_, secret := s.endpoint(buyerTok, r.URL())
	s.createDeal(sellerTok, 500)
	eventually(t, 30*time.Second, "a third attempt", func() bool { return len(r.Arrivals()) >= 3 })
	got := r.Arrivals()
	for _, a := range got {
		if a.ID() != got[0].ID() || !webhooktest.Verify(secret, a) {
			t.Fatalf("attempt %+v: id or signature differs from the first attempt %q", a, got[0].ID())
		}
	}
	if gap := got[1].At.Sub(got[0].At); gap < 2*time.Second {
		t.Fatalf("first retry after %v, want the schedule's ~2s", gap)
	}
	var log struct {
		Data []struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"data"`
	}
	eventually(t, 5*time.Second, "the delivery to succeed", func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries?event_id="+got[0].ID(), buyerTok, nil, http.StatusOK, &log)
		return len(log.Data) == 1 && log.Data[0].Status == "succeeded"
	})
	if log.Data[0].Attempts != 3 {
		t.Fatalf("attempts %d, want 3", log.Data[0].Attempts)
	}
	// This run (first round, two timed retries, a success) is the history
	// the replay test in package workflows checks determinism against.
	if path := os.Getenv("WRITE_DELIVERY_HISTORY"); path != "" {
		writeHistory(t, workflows.WorkflowID(got[0].ID()), path)
	}
}

// writeHistory saves a finished workflow's history as JSON.
func writeHistory(t *testing.T, workflowID, path string) {
	t.Helper()
	ctx := context.Background()
	run := temporal.GetDefaultClient().GetWorkflow(ctx, workflowID, "")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	iter := temporal.GetDefaultClient().GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRevokedGrantCancelsRetries(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	r := webhooktest.NewReceiver(t, webhooktest.WithStatus(func(int) int { return http.StatusInternalServerError }))
	s.endpoint(buyerTok, r.URL())
	s.createDeal(sellerTok, 500)
	eventually(t, 10*time.Second, "the first attempt", func() bool { return len(r.Arrivals()) == 1 })
	s.revoke(seller, sellerTok, buyer)
	var log struct {
		Data []struct {
			Status    string  `json:"status"`
			LastError *string `json:"last_error"`
		} `json:"data"`
	}
	eventually(t, 15*time.Second, "the delivery to be cancelled", func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries", buyerTok, nil, http.StatusOK, &log)
		return len(log.Data) == 1 && log.Data[0].Status == "failed"
	})
	if log.Data[0].LastError == nil || *log.Data[0].LastError != "not attempted: grant revoked" {
		t.Fatalf("last_error %v", log.Data[0].LastError)
	}
	if n := len(r.Arrivals()); n != 1 {
		t.Fatalf("receiver got %d attempts after the revoke, want only the first", n)
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	r := webhooktest.NewReceiver(t, webhooktest.WithStatus(func(int) int { return http.StatusGone }))
	id, _ := s.endpoint(buyerTok, r.URL())
	s.createDeal(sellerTok, 500)
	var ep struct {
		Enabled        bool    `json:"enabled"`
		DisabledReason *string `json:"disabled_reason"`
	}
	eventually(t, 10*time.Second, "the endpoint to be disabled", func() bool {
		s.call(http.MethodGet, "/v1/webhook-endpoints/"+id, buyerTok, nil, http.StatusOK, &ep)
		return !ep.Enabled
	})
	if ep.DisabledReason == nil {
		t.Fatal("disabled without a reason")
	}
	d := s.createDeal(sellerTok, 600)
	s.setPrice(sellerTok, d.ID, 700)
	time.Sleep(500 * time.Millisecond)
	if n := len(r.Arrivals()); n != 1 {
		t.Fatalf("a disabled endpoint received %d requests, want 1", n)
	}
}

func TestManualRetryRedeliversNow(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	r := webhooktest.NewReceiver(t)
	s.endpoint(buyerTok, r.URL())
	s.createDeal(sellerTok, 500)
	eventually(t, 10*time.Second, "the first delivery", func() bool { return len(r.Arrivals()) == 1 })
	var log struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	eventually(t, 5*time.Second, "the delivery log", func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries", buyerTok, nil, http.StatusOK, &log)
		return len(log.Data) == 1 && log.Data[0].Status == "succeeded"
	})
	s.call(http.MethodPost, "/v1/webhook-deliveries/"+log.Data[0].ID+"/retry", buyerTok, nil, http.StatusAccepted, nil)
	eventually(t, 10*time.Second, "the redelivery", func() bool { return len(r.Arrivals()) == 2 })
	if got := r.Arrivals(); got[0].ID() != got[1].ID() {
		t.Fatalf("redelivery has webhook-id %q, first had %q", got[1].ID(), got[0].ID())
	}
}

func TestWritesSucceedWhileTemporalIsDownAndDeliveriesCatchUp(t *testing.T) {
	t.Parallel()
	// This test sweeps the outbox. In the database the package's other
	// tests share, a sweep would also start their events that were waiting
	// for their dispatcher, on this test's task queue, whose worker stops
	// when it ends: those deliveries would never run. Its outbox is a
	// database of its own.
	db, err := dbtest.Create(context.Background(), "delivery_sweep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	s := newStackOn(t, temporal.GetDefaultClient(), nil, db.Pool)
	// The API's dispatcher points at a Temporal that is not there.
	down, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	dead := delivery.NewDispatcher(down, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go dead.Run(ctx, 2)
	s.swapDelivery(dead)

	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	r := webhooktest.NewReceiver(t)
	s.endpoint(buyerTok, r.URL())
	// More events than the sweeper starts at once, so its parallel
	// starts and their marking are exercised.
	const deals = 20
	d := s.createDeal(sellerTok, 100)
	s.setPrice(sellerTok, d.ID, 200)
	for i := range deals - 1 {
		s.createDeal(sellerTok, int64(300+i))
	}
	const events = deals + 1
	time.Sleep(500 * time.Millisecond)
	if n := len(r.Arrivals()); n != 0 {
		t.Fatalf("%d deliveries without Temporal", n)
	}
	undispatched := func() int {
		evs, err := s.store.Undispatched(context.Background(), time.Now(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	// A sweep while Temporal is still down fails and marks nothing.
	downCtx, downCancel := context.WithTimeout(context.Background(), 2*time.Second)
	n, err := dead.SweepOnce(downCtx, 0)
	downCancel()
	if err == nil || n != 0 {
		t.Fatalf("sweep without Temporal: %d started, error %v", n, err)
	}
	if got := undispatched(); got != events {
		t.Fatalf("%d events undispatched after the failed sweep, want %d", got, events)
	}
	// Temporal is back: the sweeper finds the undispatched events.
	n, err = s.dispatcher.SweepOnce(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != events || undispatched() != 0 {
		t.Fatalf("sweep started %d events and left %d undispatched, want %d and 0", n, undispatched(), events)
	}
	eventually(t, 30*time.Second, "every event", func() bool { return len(r.Arrivals()) == events })
}

func TestWorkerRestartDeliversEveryPair(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	const buyers, deals = 3, 15
	receivers := make([]*webhooktest.Receiver, buyers)
	for i := range receivers {
		buyer, buyerTok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, buyer)
		receivers[i] = webhooktest.NewReceiver(t)
		s.endpoint(buyerTok, receivers[i].URL())
	}
	var wg sync.WaitGroup
	for i := range deals {
		if i == deals/2 {
			s.worker.Stop() // mid-run: some events are delivered, some wait
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.createDeal(sellerTok, int64(100+i)) }()
	}
	wg.Wait()
	s.startWorker()
	eventually(t, 90*time.Second, "every (event, endpoint) pair", func() bool {
		for _, r := range receivers {
			ids := map[string]bool{}
			for _, a := range r.Arrivals() {
				ids[a.ID()] = true
			}
			if len(ids) < deals {
				return false
			}
		}
		return true
	})
	for i, r := range receivers {
		ids := map[string]bool{}
		for _, a := range r.Arrivals() {
			ids[a.ID()] = true
		}
		if len(ids) != deals {
			t.Fatalf("receiver %d got %d distinct events, want %d", i, len(ids), deals)
		}
	}
}

// A first round of many pages plans runs of pages and sends them alongside
// each other: the workflow schedules several pages in one task, a receiver
// that is slow to answer holds only its own run, and each (event,
// endpoint) pair is delivered once.
func TestManyPagesGoOutInParallelRuns(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	const hang = 1500 * time.Millisecond // under the stack's 2 s send timeout
	var slow atomic.Value
	slow.Store("")
	r := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(_ http.ResponseWriter, req *http.Request) {
		if req.URL.Path == slow.Load() {
			time.Sleep(hang)
		}
	}))
	var order [][2]string // cursor and path of each recipient
	for i := range 9 {
		id, tok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, id)
		path := fmt.Sprintf("/buyer-%d", i)
		ep, _ := s.endpoint(tok, r.URL()+path)
		order = append(order, [2]string{id + "/" + ep, path})
	}
	slices.SortFunc(order, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	// Pages of two: the third recipient opens the first run after the first page.
	slow.Store(order[2][1])
	// No dispatcher hands the change over: the test starts its workflow.
	s.swapDelivery(delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue}))
	d := s.createDeal(sellerTok, 700)
	ctx := context.Background()
	var eventID string
	if err := testDB.Pool.QueryRow(ctx, `SELECT id FROM events WHERE deal_id = $1`, d.ID).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	id := delivery.WorkflowID(eventID)
	run, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.taskQueue}, delivery.WorkflowType,
		delivery.WorkflowInput{EventID: eventID, EventType: "deal.created", DealID: d.ID, PageSize: 2, LocalFirstPage: true})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.DeliveryResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != len(order) || res.Rounds != 1 {
		t.Errorf("result %+v, want %d deliveries in one round", res, len(order))
	}
	arrived := map[string]time.Time{}
	for _, a := range r.Arrivals() {
		if _, twice := arrived[a.Path]; twice || a.ID() != eventID {
			t.Errorf("%s received %s again or another event", a.Path, a.ID())
		}
		arrived[a.Path] = a.At
	}
	if len(arrived) != len(order) {
		t.Fatalf("%d of %d endpoints reached", len(arrived), len(order))
	}
	for _, o := range order[4:] { // the other runs' recipients
		if late := arrived[o[1]].Sub(arrived[order[2][1]]); late > hang*2/3 {
			t.Errorf("%s arrived %v after the slow receiver was called: held behind it", o[1], late)
		}
	}
	// Pages scheduled by one workflow task ran side by side.
	pagesPerTask, planned := map[int64]int{}, false
	iter := s.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			switch a.GetActivityType().GetName() {
			case "PlanPages":
				planned = true
			case "DeliverRound":
				pagesPerTask[a.GetWorkflowTaskCompletedEventId()]++
			}
		}
	}
	if !planned || slices.Max(slices.Collect(maps.Values(pagesPerTask))) < 2 {
		t.Errorf("planned %v, pages scheduled per task %v: want runs side by side", planned, pagesPerTask)
	}
	// The replay tests in package workflows check determinism against it.
	if path := os.Getenv("WRITE_PARALLEL_PAGES_HISTORY"); path != "" {
		writeHistory(t, id, path)
	}
}
