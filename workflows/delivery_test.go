package workflows

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
)

const testEvent = "evt_test"

// rounds scripts the activity: each call returns the next result, and
// records its input. Pages of parallel runs call it concurrently.
type rounds struct {
	mu      sync.Mutex
	results []activities.RoundResult
	inputs  []activities.RoundInput
	// final, when set, answers the round marked Final.
	final *activities.RoundResult
	// postponed records the Retry-After waits written to deliveries.
	postponed []activities.PostponeInput
	// local records, per call, whether it ran as a local activity.
	local []bool
	// failLocal makes every local activity call fail.
	failLocal bool
	// cuts answers PlanPages; plans records its inputs.
	cuts  []string
	plans []activities.PlanInput
}

func (r *rounds) call(ctx context.Context, in activities.RoundInput) (activities.RoundResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	isLocal := activity.GetInfo(ctx).IsLocalActivity
	r.local = append(r.local, isLocal)
	r.inputs = append(r.inputs, in)
	if isLocal && r.failLocal {
		return activities.RoundResult{}, errors.New("database unavailable")
	}
	if in.Final && r.final != nil {
		return *r.final, nil
	}
	if len(r.results) == 0 {
		return activities.RoundResult{}, nil
	}
	res := r.results[0]
	if len(r.results) > 1 {
		r.results = r.results[1:]
	}
	return res, nil
}

func newEnv(t *testing.T, r *rounds) (*testsuite.TestWorkflowEnvironment, *[]time.Duration) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(deliverRound, mock.Anything, mock.Anything).Return(r.call)
	env.OnActivity(planPages, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PlanInput) ([]string, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.plans = append(r.plans, in)
		return r.cuts, nil
	})
	env.OnActivity(postponeRetries, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PostponeInput) error {
		r.postponed = append(r.postponed, in)
		return nil
	})
	var timers []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	return env, &timers
}

func run(t *testing.T, env *testsuite.TestWorkflowEnvironment, in DeliveryInput) DeliveryResult {
	t.Helper()
	env.ExecuteWorkflow(DeliverEvent, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeliveryResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAllDeliveredInOneActivity(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 10, Succeeded: 10}}}
	env, timers := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent})
	if len(r.inputs) != 1 || len(*timers) != 0 {
		t.Fatalf("happy path used %d activities and %d timers, want 1 and 0", len(r.inputs), len(*timers))
	}
	if r.inputs[0].Retry {
		t.Fatal("first round must resolve recipients, not pending deliveries")
	}
	if res.Succeeded != 10 || res.Rounds != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestRetriesOnlyFailedOnSchedule(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{
		{Sent: 5, Succeeded: 3, Pending: 2},
		{Sent: 2, Succeeded: 1, Pending: 1},
		{Sent: 1, Succeeded: 1},
	}}
	env, timers := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent})
	if len(r.inputs) != 3 {
		t.Fatalf("%d rounds, want 3", len(r.inputs))
	}
	for i, in := range r.inputs[1:] {
		if !in.Retry {
			t.Fatalf("round %d is not a retry of pending deliveries", i+2)
		}
	}
	want := []time.Duration{RetryDelay(testEvent, 1), RetryDelay(testEvent, 2)}
	if len(*timers) != 2 || (*timers)[0] != want[0] || (*timers)[1] != want[1] {
		t.Fatalf("timers %v, want %v", *timers, want)
	}
	if (*timers)[0] < 2*time.Second || (*timers)[0] > 3*time.Second {
		t.Fatalf("first retry after %v, want within a few seconds", (*timers)[0])
	}
	if res.Succeeded != 5 {
		t.Fatalf("result %+v", res)
	}
}

func TestGivesUpAfterTheWholeSchedule(t *testing.T) {
	// The last round reports the delivery failed rather than pending.
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Pending: 1}}, final: &activities.RoundResult{Sent: 1, Failed: 1}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent})
	if !r.inputs[len(r.inputs)-1].Final || r.inputs[len(r.inputs)-2].Final {
		t.Fatal("only the last round may be final")
	}
	if len(*timers) != Retries {
		t.Fatalf("%d retry rounds, want %d", len(*timers), Retries)
	}
	var total time.Duration
	for _, d := range *timers {
		total += d
	}
	if total < 24*time.Hour {
		t.Fatalf("retries span %v, want at least 24h", total)
	}
}

func TestRevokedOrGoneEndsRetries(t *testing.T) {
	// A retry round in which the grant was revoked or the endpoint answered
	// 410 reports the delivery failed, not pending: no more rounds follow.
	r := &rounds{results: []activities.RoundResult{{Sent: 2, Succeeded: 1, Pending: 1}, {Failed: 1}}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent})
	if len(r.inputs) != 2 || len(*timers) != 1 {
		t.Fatalf("%d rounds and %d timers, want 2 and 1", len(r.inputs), len(*timers))
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Pending: 1, RetryAfter: time.Hour}, {Sent: 1, Succeeded: 1}}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent})
	if len(*timers) != 1 || (*timers)[0] != time.Hour {
		t.Fatalf("timers %v, want [1h]", *timers)
	}
	if len(r.postponed) != 1 {
		t.Fatalf("the 1h wait was written %d times, want once", len(r.postponed))
	}
}

func TestPagesLargeRecipientSets(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{
		{Sent: 2, Succeeded: 2, Next: "ep-2"},
		{Sent: 2, Succeeded: 2, Next: "ep-4"},
		{Sent: 1, Succeeded: 1},
	}}
	env, _ := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent, PageSize: 2})
	if len(r.inputs) != 3 || r.inputs[1].After != "ep-2" || r.inputs[2].After != "ep-4" || r.inputs[0].Limit != 2 {
		t.Fatalf("pages %+v", r.inputs)
	}
	if res.Succeeded != 5 || res.Rounds != 1 {
		t.Fatalf("result %+v", res)
	}
}

// Past its first page, a first round plans runs of pages and sends them
// alongside each other, each run bounded by the next one's start.
func TestFirstRoundSendsTheRestInParallelRuns(t *testing.T) {
	r := &rounds{
		results: []activities.RoundResult{{Sent: 2, Succeeded: 2, Next: "b/2"}, {Sent: 2, Succeeded: 2}},
		cuts:    []string{"b/4", "b/6"},
	}
	env, _ := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent, PageSize: 2})
	if len(r.plans) != 1 || r.plans[0] != (activities.PlanInput{EventID: testEvent, After: "b/2", Limit: 2}) {
		t.Fatalf("plans %+v, want one after the first page", r.plans)
	}
	runs := map[[2]string]bool{}
	for _, in := range r.inputs[1:] {
		runs[[2]string{in.After, in.Upto}] = true
	}
	want := map[[2]string]bool{{"b/2", "b/4"}: true, {"b/4", "b/6"}: true, {"b/6", ""}: true}
	if len(r.inputs) != 4 || !maps.Equal(runs, want) {
		t.Fatalf("pages %+v, want the first and one per run %v", r.inputs, want)
	}
	if res.Succeeded != 8 || res.Rounds != 1 {
		t.Fatalf("result %+v", res)
	}
}

// A workflow that began its first round before parallel runs existed
// goes on sending its pages one after another.
func TestFirstRoundOfAnOlderVersionPagesInTurn(t *testing.T) {
	r := &rounds{
		results: []activities.RoundResult{{Sent: 2, Succeeded: 2, Next: "b/2"}, {Sent: 2, Succeeded: 2, Next: "b/4"}, {Sent: 1, Succeeded: 1}},
		cuts:    []string{"b/4"},
	}
	env, _ := newEnv(t, r)
	env.OnGetVersion(parallelPagesVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	run(t, env, DeliveryInput{EventID: testEvent, PageSize: 2})
	if len(r.plans) != 0 || len(r.inputs) != 3 || r.inputs[1].After != "b/2" || r.inputs[2].After != "b/4" || r.inputs[2].Upto != "" {
		t.Fatalf("plans %+v, pages %+v: want three pages in turn", r.plans, r.inputs)
	}
}

func TestRetrySignalSkipsTheWait(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Pending: 1, RetryAfter: 10 * time.Hour}, {Sent: 1, Succeeded: 1}}}
	env, _ := newEnv(t, r)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(RetrySignal, nil) }, time.Minute)
	start := env.Now()
	run(t, env, DeliveryInput{EventID: testEvent})
	if elapsed := env.Now().Sub(start); elapsed > time.Hour {
		t.Fatalf("retry waited %v despite the signal", elapsed)
	}
	if len(r.inputs) != 2 {
		t.Fatalf("%d rounds, want 2", len(r.inputs))
	}
}

func TestContinuedRunStillWaits(t *testing.T) {
	// A run continued as new resumes at its round but keeps the schedule.
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Succeeded: 1}}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent, Resume: true, Round: 3})
	if len(r.inputs) != 1 || len(*timers) != 1 || (*timers)[0] != RetryDelay(testEvent, 3) {
		t.Fatalf("continued run: rounds %+v, timers %v", r.inputs, *timers)
	}
}

func TestResumeGoesStraightToPending(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 1, Succeeded: 1}}}
	env, timers := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent, Resume: true, Now: true})
	if len(r.inputs) != 1 || !r.inputs[0].Retry || len(*timers) != 0 {
		t.Fatalf("resume ran %+v with timers %v", r.inputs, *timers)
	}
}

func TestLocalFirstPageHappyPath(t *testing.T) {
	r := &rounds{results: []activities.RoundResult{{Sent: 10, Succeeded: 10}}}
	env, timers := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent, LocalFirstPage: true})
	if len(r.inputs) != 1 || !r.local[0] || len(*timers) != 0 {
		t.Fatalf("happy path: calls %+v local %v timers %v, want one local call", r.inputs, r.local, *timers)
	}
	if res.Succeeded != 10 || res.Rounds != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestLocalFirstPageOnlyTheFirstPageOfTheFirstRound(t *testing.T) {
	// Later pages and retry rounds are regular activities: their retries
	// must be durable, and history grows with pages either way.
	r := &rounds{results: []activities.RoundResult{
		{Sent: 2, Succeeded: 1, Pending: 1, Next: "ep-2"},
		{Sent: 1, Succeeded: 1},
		{Sent: 1, Succeeded: 1},
	}}
	env, _ := newEnv(t, r)
	run(t, env, DeliveryInput{EventID: testEvent, LocalFirstPage: true, PageSize: 2})
	want := []bool{true, false, false}
	if len(r.local) != 3 || r.local[0] != want[0] || r.local[1] != want[1] || r.local[2] != want[2] {
		t.Fatalf("local per call %v, want %v", r.local, want)
	}
	if r.inputs[1].After != "ep-2" || !r.inputs[2].Retry {
		t.Fatalf("calls %+v", r.inputs)
	}
}

func TestLocalFirstPageFailureFallsBackToAnActivity(t *testing.T) {
	// The local attempt fails once and is not retried locally: the same
	// page runs as a regular activity with durable retries.
	r := &rounds{results: []activities.RoundResult{{Sent: 3, Succeeded: 3}}, failLocal: true}
	env, _ := newEnv(t, r)
	res := run(t, env, DeliveryInput{EventID: testEvent, LocalFirstPage: true})
	if len(r.local) != 2 || !r.local[0] || r.local[1] {
		t.Fatalf("local per call %v, want [true false]", r.local)
	}
	if r.inputs[0] != r.inputs[1] {
		t.Fatalf("the fallback ran %+v, want the same page %+v", r.inputs[1], r.inputs[0])
	}
	if res.Succeeded != 3 {
		t.Fatalf("result %+v", res)
	}
}
