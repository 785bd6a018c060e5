package delivery

// The delivery workflow as its starters see it. Package workflows
// implements it under WorkflowType; the dispatcher starts it by that name,
// so this package needs nothing from the workflow code.

// TaskQueue is where delivery workflows and activities run.
const TaskQueue = "dealcast-webhooks"

// WorkflowType is the registered name of the delivery workflow.
const WorkflowType = "DeliverEvent"

// RetrySignal makes a running delivery workflow start its next round now.
const RetrySignal = "retry-now"

// WorkflowID is the delivery workflow of an event: one per event, so a
// repeated start is recognised and refused by Temporal.
func WorkflowID(eventID string) string { return "deliver-" + eventID }

// WorkflowInput names the event to deliver.
type WorkflowInput struct {
	EventID   string
	EventType string
	DealID    string
	// Resume skips the first round and goes straight to the event's
	// pending deliveries: used when a buyer asks for a delivery again and
	// when the workflow continues as new.
	Resume bool
	// Now runs the first retry round at once instead of after its delay:
	// a buyer asked for it.
	Now bool
	// Round is the retry round to start from when resuming.
	Round int
	// PageSize overrides workflows.PageSize (tests use small pages).
	PageSize int
	// LocalFirstPage sends the first page of the first round as a local
	// activity, inside the workflow task that starts the workflow. With an
	// eager start the happy path then costs the server one start and one
	// task completion instead of an activity's schedule, dispatch,
	// completion and a second workflow task. Workflows started before this
	// field existed ran a regular activity there; the input, not the code,
	// decides, so their histories still replay.
	LocalFirstPage bool
}
