package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistory replays a real run (first round, two timed
// retries, a success) recorded from the end-to-end tests; a change to
// DeliverEvent that would break running workflows fails here. Re-record
// with: WRITE_DELIVERY_HISTORY=$PWD/workflows/testdata/deliver_event_history.json
// go test -run TestFailingReceiver ./internal/delivery/
func TestReplayRecordedHistory(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(DeliverEvent)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/deliver_event_history.json"); err != nil {
		t.Fatal(err)
	}
}
