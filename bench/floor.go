package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/internal/delivery"
)

// WorkflowFloor is the machine's CPU for the least workflow a change can
// start: started eagerly with the delivery workflow's options, search
// attributes and input, completed in its first task, on the same embedded
// server and worker process. It bounds every scenario that writes.
type WorkflowFloor struct {
	Workflows int `json:"workflows"`
	Starters  int `json:"starters"`
	// Seconds is the window whose CPU counts: the starts, until all are
	// closed in visibility, then each workflow task's timeout timer (10 s).
	Seconds      float64 `json:"seconds"`
	MachineCPUUs float64 `json:"machine_cpu_us_per_workflow"`
	PerS         float64 `json:"workflows_per_s"` // cores / MachineCPUUs
	ProcessCPUUs float64 `json:"process_cpu_us_per_workflow"`
}

const floorQueue = "dealcast-bench-workflow-floor"

func floorWorkflow(workflow.Context, delivery.WorkflowInput) error { return nil }

// workflowFloor measures the workflow floor on an idle delivery side.
func (r *runner) workflowFloor(ctx context.Context) error {
	ds := r.st.delivery
	if ds == nil {
		return errors.New("delivery is paused")
	}
	w := worker.New(ds.client, floorQueue, worker.Options{MaxConcurrentWorkflowTaskExecutionSize: 64})
	w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: "BenchWorkflowFloor"})
	if err := w.Start(); err != nil {
		return fmt.Errorf("workflow floor worker: %w", err)
	}
	defer w.Stop()
	start := func() error {
		dealID := uuid.NewString()
		_, err := ds.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: "bench-floor-" + uuid.NewString(), TaskQueue: floorQueue, EnableEagerStart: true,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				delivery.DealIDAttr.ValueSet(dealID), delivery.EventTypeAttr.ValueSet("deal.updated")),
		}, "BenchWorkflowFloor", delivery.WorkflowInput{EventID: "evt_" + uuid.NewString(), EventType: "deal.updated", DealID: dealID, LocalFirstPage: true})
		return err
	}
	busy0, proc0, from := machineBusy(), selfCPU(), time.Now()
	var started, failed atomic.Int64
	var wg sync.WaitGroup
	end := from.Add(min(10*time.Second, r.cfg.duration()))
	for range r.cfg.FloorStarters {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				if start() != nil {
					failed.Add(1)
				} else {
					started.Add(1)
				}
			}
		})
	}
	wg.Wait()
	lastStart := time.Now()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("workflow floor: %d starts failed", n)
	}
	n := int(started.Load())
	if err := r.waitClosed(ctx, ds.client, int64(n)); err != nil {
		return err
	}
	// Each workflow task's start-to-close timeout is a timer task that the
	// server loads and discards when it fires, after the workflow closed.
	time.Sleep(time.Until(lastStart.Add(11 * time.Second)))
	f := &WorkflowFloor{Workflows: n, Starters: r.cfg.FloorStarters, Seconds: round(time.Since(from).Seconds())}
	if busy := machineBusy() - busy0; n > 0 && busy > 0 {
		f.MachineCPUUs = round(busy / float64(n) * 1e6)
		f.PerS = round(float64(runtime.NumCPU()) * 1e6 / f.MachineCPUUs)
		f.ProcessCPUUs = round((selfCPU() - proc0) / float64(n) * 1e6)
	}
	r.res.WorkflowFloor = f
	return nil
}

// waitClosed waits until n floor workflows are completed in visibility.
func (r *runner) waitClosed(ctx context.Context, c client.Client, n int64) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Completed'", floorQueue)
	for {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: r.st.cfg.TemporalNamespace, Query: query})
		if err == nil && resp.GetCount() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workflow floor: %d workflows not all completed (last error: %v)", n, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
