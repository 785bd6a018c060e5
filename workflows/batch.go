package workflows

import (
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/delivery"
)

// BatchInput names the events a batch workflow delivers.
type BatchInput = delivery.BatchInput

// DeliverBatch delivers events committed close together in one workflow:
// the first page of every event's first round in one local activity (one
// workflow task for the whole batch), then each event that has more
// recipients or deliveries to retry goes on in its own DeliverEvent
// workflow, with the retry schedule and manual retries as before. A busy
// dispatcher so pays one workflow for dozens of changes while receivers
// answer, and one more per change only for those that fail.
func DeliverBatch(ctx workflow.Context, in BatchInput) (DeliveryResult, error) {
	pageSize := in.PageSize
	if pageSize <= 0 {
		pageSize = PageSize
	}
	pages := make([]activities.RoundInput, len(in.Events))
	for i, ev := range in.Events {
		pages[i] = activities.RoundInput{EventID: ev.EventID, Limit: pageSize, NextAttemptIn: RetryDelay(ev.EventID, 1)}
	}
	var results []activities.RoundResult
	lctx := workflow.WithLocalActivityOptions(ctx, localOptions)
	if err := workflow.ExecuteLocalActivity(lctx, deliverPages, pages).Get(ctx, &results); err != nil {
		workflow.GetLogger(ctx).Warn("local delivery of the batch failed; retrying it as an activity", "events", len(pages), "err", err)
		actx := workflow.WithActivityOptions(ctx, pageOptions)
		if err := workflow.ExecuteActivity(actx, deliverPages, pages).Get(ctx, &results); err != nil {
			return DeliveryResult{}, err
		}
	}
	total := DeliveryResult{Rounds: 1}
	var handed []workflow.ChildWorkflowFuture
	for i, res := range results {
		total.Sent += res.Sent
		total.Succeeded += res.Succeeded
		total.Failed += res.Failed
		if res.Next == "" && res.Pending == 0 {
			continue
		}
		ev := in.Events[i]
		next := delivery.WorkflowInput{
			EventID: ev.EventID, EventType: ev.EventType, DealID: ev.DealID, PageSize: in.PageSize,
			Pending: res.Pending, RetryAfter: res.RetryAfter,
		}
		if res.Next != "" {
			next.After = res.Next // the first round goes on
		} else {
			next.Resume, next.Round = true, 1 // the retry schedule starts
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: delivery.WorkflowID(ev.EventID),
			// The event's workflow outlives this one: the batch ends once
			// every hand-over has started.
			ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: delivery.EventAttributes(ev.DealID, ev.EventType),
		})
		handed = append(handed, workflow.ExecuteChildWorkflow(cctx, delivery.WorkflowType, next))
	}
	for _, f := range handed {
		// An event whose workflow is running already (a manual retry, or
		// a sweep that grouped it differently) is in its hands.
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return total, err
		}
	}
	return total, nil
}
