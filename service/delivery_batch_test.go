package service_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// A burst of changes committed while the dispatcher is busy shares batch
// workflows, and every (event, endpoint) pair still arrives: the healthy
// receiver's in the batch's first round, the failing receiver's through the
// event's own workflow that the batch hands it to, on the retry schedule.
// Every deal stays findable by DealIds.
func TestBurstOfChangesSharesWorkflows(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	healthy, healthyTok := s.account(store.RoleBuyer)
	flaky, flakyTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, healthy)
	s.grant(seller, sellerTok, flaky)
	rHealthy := webhooktest.NewReceiver(t)
	// The flaky receiver refuses the first attempt of every event.
	var mu sync.Mutex
	seen := map[string]bool{}
	rFlaky := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !seen[r.Header.Get("webhook-id")]
		seen[r.Header.Get("webhook-id")] = true
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	_, healthySecret := s.endpoint(healthyTok, rHealthy.URL())
	_, flakySecret := s.endpoint(flakyTok, rFlaky.URL())

	// The changes queue up behind a dispatcher that is not running yet, as
	// they do behind a busy one.
	d := delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue, Eager: true})
	s.swapDelivery(d)
	const deals = 40
	dealIDs := make([]string, deals)
	for i := range dealIDs {
		dealIDs[i] = s.createDeal(sellerTok, int64(1000+i)).ID
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ids := func(r *webhooktest.Receiver, secret string) map[string]bool {
		got := map[string]bool{}
		for _, a := range r.Arrivals() {
			if !webhooktest.Verify(secret, a) {
				t.Fatalf("signature %q does not verify", a.Signature())
			}
			got[a.ID()] = true
		}
		return got
	}
	eventually(t, 10*time.Second, "every deal at the healthy receiver", func() bool { return len(ids(rHealthy, healthySecret)) == deals })
	// The flaky receiver's retries wait for the schedule's first delay.
	eventually(t, 30*time.Second, "every deal at the flaky receiver", func() bool {
		return len(ids(rFlaky, flakySecret)) == deals && len(rFlaky.Arrivals()) >= 2*deals
	})
	want := ids(rHealthy, healthySecret)
	for id := range ids(rFlaky, flakySecret) {
		if !want[id] {
			t.Fatalf("event %s reached the flaky receiver only", id)
		}
	}
	if n := len(rHealthy.Arrivals()); n != deals {
		t.Errorf("healthy receiver got %d requests for %d events", n, deals)
	}

	// Every delivery ends succeeded in the log, each pair once.
	for _, tok := range []string{healthyTok, flakyTok} {
		var log struct {
			Data []struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		eventually(t, 10*time.Second, "the delivery log", func() bool {
			s.call(http.MethodGet, "/v1/webhook-deliveries?limit=100", tok, nil, http.StatusOK, &log)
			ok := 0
			for _, e := range log.Data {
				if e.Status == "succeeded" {
					ok++
				}
			}
			return len(log.Data) == deals && ok == deals
		})
	}

	// The first round shared workflows: far fewer batches than changes.
	batches := s.workflowIDs(t, fmt.Sprintf("WorkflowType = %q", delivery.BatchWorkflowType))
	if len(batches) == 0 || len(batches) > deals/4 {
		t.Fatalf("%d batch workflows for %d changes, want between 1 and %d", len(batches), deals, deals/4)
	}
	// Each deal is found by DealIds: its batch and its retrying workflow.
	for _, id := range []string{dealIDs[0], dealIDs[deals/2], dealIDs[deals-1]} {
		eventually(t, 10*time.Second, "the deal's workflows by DealIds", func() bool {
			types := map[string]int{}
			for _, typ := range s.workflowIDs(t, fmt.Sprintf("DealIds = %q", id)) {
				types[typ]++
			}
			return types[delivery.BatchWorkflowType] == 1 && types[delivery.WorkflowType] == 1
		})
	}
	// These runs (a batch that hands its events over, and an event's
	// retry after the hand-over) are histories the replay tests in package
	// workflows check determinism against.
	if path := os.Getenv("WRITE_BATCH_HISTORY"); path != "" {
		for id := range batches {
			writeHistory(t, id, path)
			break
		}
	}
	if path := os.Getenv("WRITE_HANDED_OVER_HISTORY"); path != "" {
		for id := range s.workflowIDs(t, fmt.Sprintf("WorkflowType = %q", delivery.WorkflowType)) {
			writeHistory(t, id, path)
			break
		}
	}
}

// workflowIDs returns the IDs and types of the workflows on s's task
// queue that match query.
func (s *stack) workflowIDs(t *testing.T, query string) map[string]string {
	t.Helper()
	resp, err := s.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("TaskQueue = %q AND %s", s.taskQueue, query),
	})
	if err != nil {
		t.Fatalf("list workflows %q: %v", query, err)
	}
	found := map[string]string{}
	for _, e := range resp.GetExecutions() {
		found[e.GetExecution().GetWorkflowId()] = e.GetType().GetName()
	}
	return found
}

// A steady stream of changes above the busy rate makes the dispatcher
// linger, so changes share workflows beyond those that queue behind a
// start; a change after a quiet second is started at once, in a workflow
// of its own.
func TestSteadyStreamLingersAndALoneChangeDoesNot(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)
	r := s.buyers(seller, sellerTok, 1)[0].r
	// The changes are committed first, behind a dispatcher that never
	// runs, and then handed over one every 8 ms (125 a second) whatever
	// the machine's load.
	s.swapDelivery(delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue}))
	const changes = 120
	deals := map[string]bool{}
	for i := range changes {
		deals[s.createDeal(sellerTok, int64(1000+i)).ID] = true
	}
	pending, err := s.store.Undispatched(context.Background(), time.Now().Add(time.Hour), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	pending = slices.DeleteFunc(pending, func(ev store.EventRef) bool { return !deals[ev.DealID] })
	if len(pending) != changes {
		t.Fatalf("%d undispatched events of this test's deals, want %d", len(pending), changes)
	}
	// A linger far longer than a start, so that only lingering can fill a
	// batch: without it, a batch holds what queued behind one start. A low
	// busy rate, so that slow starts on a loaded machine still reach it
	// with a full batch's worth of events to come.
	d := delivery.NewDispatcher(s.client, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue, Eager: true,
		Linger: 3 * time.Second, BusyRate: 10})
	s.swapDelivery(d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tick := time.NewTicker(8 * time.Millisecond)
	for _, ev := range pending {
		<-tick.C
		d.Dispatch(ctx, ev)
	}
	tick.Stop()
	eventually(t, 20*time.Second, "every change delivered", func() bool { return len(r.Arrivals()) >= changes })
	eventually(t, 5*time.Second, "a full batch", func() bool {
		return slices.Contains(s.batchSizes(t), delivery.MaxBatch)
	})

	time.Sleep(1100 * time.Millisecond) // the starter's window forgets the stream
	lone := s.createDeal(sellerTok, 5000).ID
	eventually(t, 2*time.Second, "the lone change's own workflow", func() bool {
		for _, typ := range s.workflowIDs(t, fmt.Sprintf("DealIds = %q", lone)) {
			if typ == delivery.WorkflowType {
				return true
			}
		}
		return false
	})
	if n := len(r.Arrivals()); n != changes+1 {
		t.Errorf("receiver got %d requests for %d changes", n, changes+1)
	}
}

// batchSizes returns how many deals each batch workflow on s's task queue
// names in DealIds.
func (s *stack) batchSizes(t *testing.T) []int {
	t.Helper()
	resp, err := s.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("TaskQueue = %q AND WorkflowType = %q", s.taskQueue, delivery.BatchWorkflowType),
	})
	if err != nil {
		t.Fatalf("list batch workflows: %v", err)
	}
	var sizes []int
	for _, e := range resp.GetExecutions() {
		var deals []string
		if err := converter.GetDefaultDataConverter().FromPayload(e.GetSearchAttributes().GetIndexedFields()["DealIds"], &deals); err != nil {
			t.Fatalf("DealIds of %s: %v", e.GetExecution().GetWorkflowId(), err)
		}
		sizes = append(sizes, len(deals))
	}
	return sizes
}
