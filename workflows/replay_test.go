package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistory replays real runs (first round, two timed
// retries, a success) recorded from the end-to-end tests; a change to
// DeliverEvent that would break running workflows fails here. One history
// is of a workflow started before LocalFirstPage existed (its first page a
// regular activity), the other of one started with it (a local activity,
// recorded as a marker). Re-record the newer with:
// WRITE_DELIVERY_HISTORY=$PWD/workflows/testdata/deliver_event_local_history.json
// go test -run TestFailingReceiver ./internal/delivery/
func TestReplayRecordedHistory(t *testing.T) {
	for _, file := range []string{"deliver_event_history.json", "deliver_event_local_history.json"} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(DeliverEvent)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/"+file); err != nil {
				t.Fatal(err)
			}
		})
	}
}
