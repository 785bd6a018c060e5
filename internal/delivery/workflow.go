package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// The delivery workflow as its starters see it. Package workflows
// implements it under WorkflowType; the dispatcher starts it by that name,
// so this package needs nothing from the workflow code.

// TaskQueue is where delivery workflows and activities run.
const TaskQueue = "dealcast-webhooks"

// WorkflowType is the registered name of the delivery workflow of one
// event.
const WorkflowType = "DeliverEvent"

// BatchWorkflowType is the registered name of the workflow that delivers
// the first page of several events committed close together, and hands
// any event with more to do to its own WorkflowType workflow.
const BatchWorkflowType = "DeliverBatch"

// MaxBatch is the most events one batch workflow takes: enough that a
// busy dispatcher pays a workflow start for dozens of changes, and few
// enough that the batch's DealIds (at most one deal per event, 39 bytes
// each as JSON) stay under Temporal's default 2 KiB limit on a search
// attribute's value.
const MaxBatch = 48

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
	// After, Pending and RetryAfter carry the first page of the first
	// round when a batch workflow ran it: the first round continues after
	// that page (or, with Resume, the schedule goes on), counting the
	// page's pending deliveries and honouring its receivers' Retry-After.
	After      string
	Pending    int
	RetryAfter time.Duration
}

// BatchInput names the events one batch workflow delivers.
type BatchInput struct {
	Events []WorkflowInput
	// PageSize overrides workflows.PageSize (tests use small pages).
	PageSize int
}

// BatchWorkflowID names the batch workflow of events after the set they
// form: the same batch started twice is refused by Temporal, while a
// different grouping of some of the same events (a sweep after a crash)
// is a new workflow, whose rounds skip the recipients already reached.
func BatchWorkflowID(eventIDs []string) string {
	ids := slices.Sorted(slices.Values(eventIDs))
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return "deliver-batch-" + ids[0] + "-" + hex.EncodeToString(sum[:6])
}
