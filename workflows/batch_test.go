package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/delivery"
)

// A batch sends every event's first page in one local activity, and hands
// only the events with more to do to their own workflows: one with more
// recipients continues its first round after the page, one with pending
// deliveries starts the retry schedule with the page's Retry-After.
func TestBatchHandsOverOnlyUnfinishedEvents(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterWorkflowWithOptions(DeliverEvent, workflow.RegisterOptions{Name: delivery.WorkflowType})
	var calls [][]activities.RoundInput
	env.OnActivity(deliverPages, mock.Anything, mock.Anything).Return(func(_ context.Context, pages []activities.RoundInput) ([]activities.RoundResult, error) {
		calls = append(calls, pages)
		return []activities.RoundResult{
			{Sent: 3, Succeeded: 3},
			{Sent: 2, Succeeded: 2, Next: "buyer/ep-2"},
			{Sent: 1, Pending: 1, RetryAfter: time.Hour},
		}, nil
	})
	handed := map[string]delivery.WorkflowInput{}
	env.OnWorkflow(delivery.WorkflowType, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in delivery.WorkflowInput) (DeliveryResult, error) {
		handed[in.EventID] = in
		return DeliveryResult{}, nil
	})
	env.ExecuteWorkflow(DeliverBatch, BatchInput{Events: []delivery.WorkflowInput{
		{EventID: "evt_done", DealID: "d1"}, {EventID: "evt_more", DealID: "d2"}, {EventID: "evt_retry", DealID: "d3"},
	}})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res DeliveryResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || len(calls[0]) != 3 || calls[0][1].EventID != "evt_more" || calls[0][0].Limit != PageSize {
		t.Fatalf("activity calls %+v, want one with the three first pages", calls)
	}
	if res.Sent != 6 || res.Succeeded != 5 {
		t.Fatalf("result %+v", res)
	}
	if _, ok := handed["evt_done"]; ok || len(handed) != 2 {
		t.Fatalf("handed over %+v, want evt_more and evt_retry only", handed)
	}
	if in := handed["evt_more"]; in.Resume || in.After != "buyer/ep-2" || in.Pending != 0 || in.DealID != "d2" {
		t.Fatalf("evt_more handed over as %+v, want its first round to go on after the page", in)
	}
	if in := handed["evt_retry"]; !in.Resume || in.Round != 1 || in.Pending != 1 || in.RetryAfter != time.Hour {
		t.Fatalf("evt_retry handed over as %+v, want the schedule from round 1 with the 1h Retry-After", in)
	}
}

// An event handed over with its first page done keeps the schedule: its
// workflow continues the first round after the page, counts the page's
// pending delivery, and retries it after the first delay.
func TestHandedOverEventContinuesItsFirstRound(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 2, Succeeded: 2}, {Sent: 1, Succeeded: 1}}}
	env, timers := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent, After: "buyer/ep-2", Pending: 1})
	if len(r.inputs) != 2 || r.inputs[0].After != "buyer/ep-2" || r.inputs[0].Retry || !r.inputs[1].Retry {
		t.Fatalf("rounds %+v, want the rest of the first round, then a retry", r.inputs)
	}
	if len(*timers) != 1 || (*timers)[0] != RetryDelay(testEvent, 1) {
		t.Fatalf("timers %v, want the first delay", *timers)
	}
	if res.Succeeded != 3 {
		t.Fatalf("result %+v", res)
	}
}

// An event handed over for retries waits for its receivers' Retry-After,
// written once on its deliveries.
func TestHandedOverEventWaitsForRetryAfter(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Succeeded: 1}}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent, Resume: true, Round: 1, Pending: 1, RetryAfter: time.Hour})
	if len(*timers) != 1 || (*timers)[0] != time.Hour {
		t.Fatalf("timers %v, want [1h]", *timers)
	}
	if len(r.postponed) != 1 || len(r.inputs) != 1 || !r.inputs[0].Retry {
		t.Fatalf("postponed %d times, rounds %+v", len(r.postponed), r.inputs)
	}
}
