package bench

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// maxHistories caps the histories read; more workflows are sampled evenly.
const maxHistories = 2000

// billableActions counts the actions Temporal Cloud bills for one
// workflow's history: its start, each activity, timer, signal received or
// sent, child started and search attribute upsert, and one for each
// workflow task whose completion recorded markers (local activities).
func billableActions(events []*historypb.HistoryEvent) int {
	n, markerTasks := 0, map[int64]bool{}
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			enumspb.EVENT_TYPE_TIMER_STARTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			n++
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			markerTasks[e.GetMarkerRecordedEventAttributes().GetWorkflowTaskCompletedEventId()] = true
		}
	}
	return n + len(markerTasks)
}

// actionsPerChange sets temporal_actions_per_change: the billable actions
// of all workflows started between from and to, per change committed then.
func (r *runner) actionsPerChange(ctx context.Context, res *Result, from, to time.Time, changes int) {
	res.set("temporal_actions_per_change", 0.0)
	query := fmt.Sprintf("StartTime >= '%s' AND StartTime <= '%s'", from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	var runs []*workflowpb.WorkflowExecutionInfo
	for token := []byte(nil); ; {
		resp, err := r.st.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: r.st.cfg.TemporalNamespace, PageSize: 1000, NextPageToken: token, Query: query})
		if err != nil {
			r.note("listing workflows: %v", err)
			return
		}
		if runs, token = append(runs, resp.GetExecutions()...), resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	stride, actions, read := (len(runs)+maxHistories-1)/maxHistories, 0, 0
	for i := 0; i < len(runs); i += stride {
		var events []*historypb.HistoryEvent
		run := runs[i].GetExecution()
		for it := r.st.client.GetWorkflowHistory(ctx, run.GetWorkflowId(), run.GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); {
			e, err := it.Next()
			if err != nil {
				r.note("history of %s: %v", run.GetWorkflowId(), err)
				return
			}
			events = append(events, e)
		}
		actions, read = actions+billableActions(events), read+1
	}
	res.set("temporal_actions_per_change", ratio(float64(actions*len(runs)), float64(read*changes)))
}
