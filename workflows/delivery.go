// Package workflows holds Dealcast's Temporal workflows. They are
// deterministic: all I/O happens in package activities.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/delivery"
)

// TaskQueue is where delivery workflows and activities run.
const TaskQueue = delivery.TaskQueue

// RetrySignal makes a running delivery workflow start its next round now.
const RetrySignal = delivery.RetrySignal

// PageSize is how many endpoints one activity serves. Each page is one
// activity, so history grows with pages, not with buyers, and an activity
// that is retried repeats at most one page.
const PageSize = 500

// WorkflowID is the delivery workflow of an event.
func WorkflowID(eventID string) string { return delivery.WorkflowID(eventID) }

// DeliveryInput names the event to deliver; package delivery, which starts
// the workflow, owns its shape.
type DeliveryInput = delivery.WorkflowInput

// DeliveryResult tells how the event's delivery ended.
type DeliveryResult struct {
	Rounds    int
	Sent      int
	Succeeded int
	Failed    int
}

var (
	deliverRound    = (*activities.Activities)(nil).DeliverRound
	deliverPages    = (*activities.Activities)(nil).DeliverPages
	planPages       = (*activities.Activities)(nil).PlanPages
	postponeRetries = (*activities.Activities)(nil).PostponeRetries
)

// ParallelPages is how many runs of pages of one first round are sent at
// once, so that a page held by hanging receivers delays only its own run.
const ParallelPages = 4

// parallelPagesVersion marks histories whose first rounds, past their
// first page, send their pages in parallel runs (PlanPages).
const parallelPagesVersion = "parallel-pages"

// pageOptions are a delivery page's, as a regular activity.
var pageOptions = workflow.ActivityOptions{
	// One page: up to PageSize requests of at most 10 s each, sent
	// concurrently.
	StartToCloseTimeout: 5 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	// Infrastructure failures (database down, worker lost) are retried
	// without limit: giving up would lose deliveries.
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: []string{"EventNotFound"},
	},
}

// localOptions run a page once as a local activity; on failure the caller
// runs it again as a regular activity, whose retries are durable.
var localOptions = workflow.LocalActivityOptions{
	// As long as a regular page may take; past the workflow task timeout
	// the SDK keeps the task alive with heartbeats.
	StartToCloseTimeout: 5 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
}

// localPage runs one page as a local activity and reports whether it
// succeeded. It is tried once: on any failure the caller runs the same
// page as a regular activity, whose retries are durable (a retried page
// skips the recipients already reached).
func localPage(ctx workflow.Context, in activities.RoundInput) (activities.RoundResult, bool) {
	ctx = workflow.WithLocalActivityOptions(ctx, localOptions)
	var res activities.RoundResult
	if err := workflow.ExecuteLocalActivity(ctx, deliverRound, in).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Warn("local delivery page failed; retrying it as an activity", "event", in.EventID, "err", err)
		return res, false
	}
	return res, true
}

// postpone records on the event's pending deliveries that the next round
// waits for a receiver's Retry-After rather than the schedule. Each page
// knows only its own receivers' requests, so the round's longest wait is
// written here, once, when it exceeds the schedule.
func postpone(ctx workflow.Context, eventID string, pending int, wait, scheduled time.Duration) error {
	if pending == 0 || wait <= scheduled {
		return nil
	}
	return workflow.ExecuteActivity(ctx, postponeRetries, activities.PostponeInput{
		EventID: eventID, Until: workflow.Now(ctx).Add(wait),
	}).Get(ctx, nil)
}

// DeliverEvent delivers an event to every endpoint entitled to it, at
// least once: a first round to all recipients in parallel, then rounds for
// the failed ones only on a durable, growing schedule (timers), each round
// re-checking grants and endpoints, for at least 24 hours.
func DeliverEvent(ctx workflow.Context, in DeliveryInput) (DeliveryResult, error) {
	ctx = workflow.WithActivityOptions(ctx, pageOptions)
	pageSize := in.PageSize
	if pageSize <= 0 {
		pageSize = PageSize
	}
	retry := workflow.GetSignalChannel(ctx, RetrySignal)
	var total DeliveryResult

	// walk runs the pages of one round from page.After (up to page.Upto)
	// one after another and returns how many deliveries are still pending,
	// the longest Retry-After asked for and, with split set, where the round
	// goes on once its first page is done (empty: the round is done).
	walk := func(ctx workflow.Context, page activities.RoundInput, local, split bool) (int, time.Duration, string, error) {
		pending := 0
		var wait time.Duration
		for {
			var res activities.RoundResult
			ok := false
			if local {
				local = false
				res, ok = localPage(ctx, page)
			}
			if !ok {
				if err := workflow.ExecuteActivity(ctx, deliverRound, page).Get(ctx, &res); err != nil {
					return 0, 0, "", err
				}
			}
			total.Sent += res.Sent
			total.Succeeded += res.Succeeded
			total.Failed += res.Failed
			pending += res.Pending
			wait = max(wait, res.RetryAfter)
			if res.Next == "" {
				return pending, wait, "", nil
			}
			if split {
				return pending, wait, res.Next, nil
			}
			page.After = res.Next
		}
	}

	// inParallel runs the rest of a first round after page.After as runs
	// bounded by the cuts PlanPages finds, ParallelPages at a time.
	inParallel := func(page activities.RoundInput) (int, time.Duration, error) {
		var cuts []string
		if err := workflow.ExecuteActivity(ctx, planPages, activities.PlanInput{
			EventID: page.EventID, After: page.After, Limit: page.Limit,
		}).Get(ctx, &cuts); err != nil {
			return 0, 0, err
		}
		var (
			pending  int
			wait     time.Duration
			firstErr error
		)
		slots := workflow.NewBufferedChannel(ctx, ParallelPages)
		wg := workflow.NewWaitGroup(ctx)
		for i := 0; i <= len(cuts); i++ {
			run := page
			if i > 0 {
				run.After = cuts[i-1]
			}
			if i < len(cuts) {
				run.Upto = cuts[i]
			}
			slots.Send(ctx, struct{}{})
			wg.Add(1)
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer wg.Done()
				defer slots.Receive(ctx, nil)
				p, w, _, err := walk(ctx, run, false, false)
				pending, wait = pending+p, max(wait, w)
				if err != nil && firstErr == nil {
					firstErr = err
				}
			})
		}
		wg.Wait(ctx)
		return pending, wait, firstErr
	}

	// round runs every page of one round and returns how many deliveries
	// are still pending and the longest Retry-After asked for.
	round := func(retrying bool, after string, next time.Duration, final bool) (int, time.Duration, error) {
		total.Rounds++
		local := in.LocalFirstPage && !retrying && total.Rounds == 1
		page := activities.RoundInput{
			EventID: in.EventID, Retry: retrying, After: after, Limit: pageSize,
			NextAttemptIn: next, Final: final,
		}
		pending, wait, rest, err := walk(ctx, page, local, !retrying)
		if err != nil || rest == "" {
			return pending, wait, err
		}
		page.After = rest
		if workflow.GetVersion(ctx, parallelPagesVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			p, w, _, err := walk(ctx, page, false, false)
			return pending + p, max(wait, w), err
		}
		p, w, err := inParallel(page)
		return pending + p, max(wait, w), err
	}

	n := in.Round
	pending, wait := 1, in.RetryAfter // when resuming, look for pending deliveries at once
	if !in.Resume {
		var err error
		if pending, wait, err = round(false, in.After, RetryDelay(in.EventID, 1), false); err != nil {
			return total, err
		}
		// A batch workflow sent the round's first page.
		pending += in.Pending
		wait = max(wait, in.RetryAfter)
		if err := postpone(ctx, in.EventID, pending, wait, RetryDelay(in.EventID, 1)); err != nil {
			return total, err
		}
		n = 1
	} else {
		n = max(n, 1)
		// Only a batch workflow's hand-over resumes with a Retry-After.
		if err := postpone(ctx, in.EventID, 1, in.RetryAfter, RetryDelay(in.EventID, n)); err != nil {
			return total, err
		}
	}
	for ; pending > 0 && n <= Retries; n++ {
		if in.Now && total.Rounds == 0 {
			// A buyer asked for this now: no wait.
		} else {
			delay := max(RetryDelay(in.EventID, n), wait)
			timerCtx, cancel := workflow.WithCancel(ctx)
			timer := workflow.NewTimer(timerCtx, delay)
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(timer, func(workflow.Future) {})
			sel.AddReceive(retry, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
			sel.Select(ctx)
			cancel()
		}
		final := n == Retries
		var err error
		if pending, wait, err = round(true, "", RetryDelay(in.EventID, n+1), final); err != nil {
			return total, err
		}
		if err := postpone(ctx, in.EventID, pending, wait, RetryDelay(in.EventID, n+1)); err != nil {
			return total, err
		}
		if pending > 0 && !final && workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return total, workflow.NewContinueAsNewError(ctx, DeliverEvent, DeliveryInput{
				EventID: in.EventID, EventType: in.EventType, DealID: in.DealID, Resume: true, Round: n + 1, PageSize: in.PageSize, LocalFirstPage: in.LocalFirstPage,
			})
		}
	}
	// Drain a retry request that arrived during the last round so it is
	// not lost with the run: the buyer's requeued delivery gets a round.
	for retry.ReceiveAsync(nil) {
		if _, _, err := round(true, "", 0, true); err != nil {
			return total, err
		}
	}
	return total, nil
}
