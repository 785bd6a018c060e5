package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/invoice"
)

// replay replays each recorded history in testdata against the workflows
// register adds.
func replay(t *testing.T, register func(worker.WorkflowReplayer), files ...string) {
	t.Helper()
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/"+file); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReplayRecordedHistory replays real runs (first round, two timed
// retries, a success) recorded from the end-to-end tests; a change to
// DeliverEvent that would break running workflows fails here. One history
// is of a workflow started before LocalFirstPage existed (its first page a
// regular activity), the other of one started with it (a local activity,
// recorded as a marker). Re-record the newer with:
// WRITE_DELIVERY_HISTORY=$PWD/workflows/testdata/deliver_event_local_history.json
// go test -run TestFailingReceiver ./service/
func TestReplayRecordedHistory(t *testing.T) {
	replay(t, func(r worker.WorkflowReplayer) {
		r.RegisterWorkflow(DeliverEvent)
	}, "deliver_event_history.json", "deliver_event_local_history.json")
}

// TestReplayParallelPagesHistories replays first rounds to nine endpoints
// in pages of two: one recorded before runs of pages existed (the pages
// one after another), one with them (PlanPages, then runs side by side).
// Re-record the newer with:
// WRITE_PARALLEL_PAGES_HISTORY=$PWD/workflows/testdata/deliver_event_parallel_pages_history.json
// go test -run TestManyPagesGoOutInParallelRuns ./service/
func TestReplayParallelPagesHistories(t *testing.T) {
	replay(t, func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(DeliverEvent, workflow.RegisterOptions{Name: delivery.WorkflowType})
	}, "deliver_event_pages_in_turn_history.json", "deliver_event_parallel_pages_history.json")
}

// TestReplayBatchHistories replays recorded runs of the batched design: a
// DeliverBatch that sent forty events' first pages in one local activity
// and handed every one to its own workflow (a receiver refused each first
// attempt), and one such DeliverEvent, resumed by the hand-over, retrying
// on its timer. Re-record with:
// WRITE_BATCH_HISTORY=$PWD/workflows/testdata/deliver_batch_history.json
// WRITE_HANDED_OVER_HISTORY=$PWD/workflows/testdata/deliver_event_handed_over_history.json
// go test -run TestBurstOfChangesSharesWorkflows ./service/
func TestReplayBatchHistories(t *testing.T) {
	replay(t, func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(DeliverBatch, workflow.RegisterOptions{Name: delivery.BatchWorkflowType})
		r.RegisterWorkflowWithOptions(DeliverEvent, workflow.RegisterOptions{Name: delivery.WorkflowType})
	}, "deliver_batch_history.json", "deliver_event_handed_over_history.json")
}

// TestReplayInvoiceHistory replays recorded runs of InvoiceDue: one left
// unpaid (read, timer, overdue notice), one paid while it slept (read,
// timer, signal, timer cancelled); each with regular activities (before
// version 1) and with local ones. Re-record the local ones with:
// WRITE_INVOICE_HISTORY=$PWD/workflows/testdata/invoice_due_local_history.json
// go test -run TestUnpaidInvoiceGetsOneOverdueNotice ./service/
// WRITE_INVOICE_SETTLED_HISTORY=$PWD/workflows/testdata/invoice_settled_local_history.json
// go test -run TestSettledInvoicesWorkflowsEndEarly ./service/
func TestReplayInvoiceHistory(t *testing.T) {
	replay(t, func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(InvoiceDue, workflow.RegisterOptions{Name: invoice.WorkflowType})
	}, "invoice_due_history.json", "invoice_settled_history.json",
		"invoice_due_local_history.json", "invoice_settled_local_history.json")
}

// TestReplayAuctionHistory replays recorded runs of AuctionClock: one
// closed by its timers after a late bid moved closes_at (read, timer, a
// close that finds the deadline moved, timer, close), one closed by the
// seller while it slept (read, timer, signal, read); each with regular
// activities (before version 1) and with local ones. Re-record the local
// ones with:
// WRITE_AUCTION_HISTORY=$PWD/workflows/testdata/auction_clock_local_history.json
// go test -run TestAuctionClosesOnTimeByItsWorkflow ./service/
// WRITE_AUCTION_SIGNALLED_HISTORY=$PWD/workflows/testdata/auction_signalled_local_history.json
// go test -run TestCloseNowAndCancelEndTheWorkflow ./service/
func TestReplayAuctionHistory(t *testing.T) {
	replay(t, func(r worker.WorkflowReplayer) {
		r.RegisterWorkflowWithOptions(AuctionClock, workflow.RegisterOptions{Name: auction.WorkflowType})
	}, "auction_clock_history.json", "auction_signalled_history.json",
		"auction_clock_local_history.json", "auction_signalled_local_history.json")
}
