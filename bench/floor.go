package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/internal/cpuclock"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/workflows"
)

// WorkflowFloor is the machine's CPU for the least workflow a change can
// start: started eagerly with the delivery workflow's options, search
// attributes and input, completed in its first task without an activity,
// on the same embedded Temporal server and worker process. Every deal
// change costs at least this on top of its request.
type WorkflowFloor struct {
	Workflows int `json:"workflows"`
	Starters  int `json:"starters"` // goroutines starting workflows back to back
	// Seconds is the window whose CPU counts: the starts, then until every
	// workflow is closed in visibility, then the timer tasks' wait.
	Seconds float64 `json:"seconds"`
	// IdleCPUS is what the machine spends idle in that window (pollers,
	// the sweeper), measured just before and taken out.
	IdleCPUS float64 `json:"idle_cpu_s"`
	// MachineCPUUs is the whole machine's busy CPU per workflow, idle
	// taken out: server, SDK client and worker, kernel.
	MachineCPUUs float64 `json:"machine_cpu_us_per_workflow"`
	// PerS is cores / MachineCPUUs: workflows per second this machine
	// could start and finish doing nothing else.
	PerS float64 `json:"workflows_per_s"`
	// ProcessCPUUs is the bench process's part of MachineCPUUs (its own
	// idle taken out the same way): the embedded server, the SDK and the
	// worker. What is left of MachineCPUUs is other processes' work
	// meanwhile (PostgreSQL's background among them).
	ProcessCPUUs float64 `json:"process_cpu_us_per_workflow"`
}

// floorQueue keeps the floor's workflows apart from deliveries.
const floorQueue = "dealcast-bench-workflow-floor"

// floorWorkflow has the delivery workflow's input and completes at once.
func floorWorkflow(workflow.Context, workflows.DeliveryInput) error { return nil }

// workflowFloor measures the workflow floor once per run (the first
// scenario that needs it) on an idle delivery side.
func (r *runner) workflowFloor(ctx context.Context) (*WorkflowFloor, error) {
	if r.res.WorkflowFloor != nil {
		return r.res.WorkflowFloor, nil
	}
	ds := r.st.delivery
	if ds == nil {
		return nil, errors.New("delivery is paused")
	}
	c := r.cfg.WorkflowFloor
	var w worker.Worker
	var err error
	pprof.Do(ctx, pprof.Labels("part", "worker"), func(context.Context) {
		w = worker.New(ds.client, floorQueue, worker.Options{MaxConcurrentWorkflowTaskExecutionSize: 64})
		w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: "BenchWorkflowFloor"})
		err = w.Start()
	})
	if err != nil {
		return nil, fmt.Errorf("workflow floor worker: %w", err)
	}
	defer w.Stop()

	idleRate, idleProcRate := idleRates(2 * time.Second)

	start := func(ctx context.Context, _ int) error {
		dealID := uuid.NewString()
		_, err := ds.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       "bench-floor-" + uuid.NewString(),
			TaskQueue:                floorQueue,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			EnableEagerStart:         true,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				delivery.DealIDAttr.ValueSet(dealID),
				delivery.EventTypeAttr.ValueSet("deal.updated"),
			),
		}, "BenchWorkflowFloor", workflows.DeliveryInput{EventID: "evt_" + uuid.NewString(), EventType: "deal.updated", DealID: dealID, LocalFirstPage: true})
		return err
	}
	busy0, proc0, from := cpuclock.MachineBusy(), processCPU(), time.Now()
	var t Tally
	closedLoop(ctx, c.Starters, time.Duration(min(c.Seconds, r.cfg.Seconds))*time.Second, &t, start)
	lastStart := time.Now()
	_, errs := t.Errors()
	if errs > 0 {
		return nil, fmt.Errorf("workflow floor: %d of %d starts failed, first: %s", errs, t.Requests(), t.FirstError())
	}
	n := t.Requests()
	if err := r.waitClosed(ctx, ds.client, int64(n), r.cfg.DrainTimeout); err != nil {
		return nil, err
	}
	// Each workflow task's start-to-close timeout is a timer task that the
	// server loads and discards when it fires, after the workflow closed.
	if wait := time.Until(lastStart.Add(c.TimerWait)); wait > 0 {
		time.Sleep(wait)
	}
	window := time.Since(from).Seconds()
	f := &WorkflowFloor{Workflows: n, Starters: c.Starters, Seconds: round(window), IdleCPUS: round(idleRate * window)}
	busy := lessIdle(cpuclock.MachineBusy()-busy0, idleRate*window)
	if n > 0 && busy > 0 {
		f.MachineCPUUs = round(busy / float64(n) * 1e6)
		f.PerS = round(float64(runtime.NumCPU()) * 1e6 / f.MachineCPUUs)
	}
	if proc := lessIdle(processCPU()-proc0, idleProcRate*window); n > 0 && proc > 0 {
		f.ProcessCPUUs = round(proc / float64(n) * 1e6)
	}
	r.res.WorkflowFloor = f
	return f, nil
}

// lessIdle takes the idle background out of a gross CPU figure (the
// workflow floor's, the POST floor's bursts), unless the estimate would
// take more than half of it: then it swamps the measurement (a tiny run of
// a second, after a scenario whose leftovers made the "idle" second busy)
// and the gross figure, an upper bound, is kept. In a full run the
// background is a few percent of the gross.
func lessIdle(gross, idle float64) float64 {
	if idle > 0 && idle < gross/2 {
		return gross - idle
	}
	return gross
}

// waitClosed waits until n floor workflows are completed in visibility.
func (r *runner) waitClosed(ctx context.Context, c client.Client, n int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	query := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Completed'", floorQueue)
	for {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: r.st.namespace, Query: query,
		})
		if err == nil && resp.GetCount() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workflow floor: %d workflows not all completed after %s (last error: %v)", n, timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// withWorkflow is the ceiling of a write that also starts its delivery
// workflow: the database floor's cost per request plus the workflow
// floor's, in machine CPU.
func withWorkflow(d *DBFloor, wf *WorkflowFloor, pgbenchTPS float64, cores int) {
	if d == nil || wf == nil || wf.MachineCPUUs <= 0 || pgbenchTPS <= 0 {
		return
	}
	d.WorkflowCPUUs = wf.MachineCPUUs
	d.WithWorkflowRPS = round(float64(cores) * 1e6 / (d.HTTPCPUUs + d.PgbenchCPUUs + wf.MachineCPUUs))
	d.WithWorkflowRatio = round(d.WithWorkflowRPS / pgbenchTPS)
}

// floorShare is the share of the machine that rate requests a second, a
// readShare of them reads, take at measured floors: each read at the read
// scenario's database floor, each write at the write scenario's plus one
// workflow floor. 0 when either scenario did not measure its floor.
func floorShare(rate, readShare float64, read, write *ReadWriteResult, workflowUs float64, cores int) float64 {
	if read == nil || write == nil || read.DBFloor == nil || write.DBFloor == nil || cores <= 0 {
		return 0
	}
	rf, wf := read.DBFloor, write.DBFloor
	if rf.HTTPCPUUs+rf.PgbenchCPUUs <= 0 || wf.HTTPCPUUs+wf.PgbenchCPUUs <= 0 || workflowUs <= 0 {
		return 0
	}
	us := rate*readShare*(rf.HTTPCPUUs+rf.PgbenchCPUUs) + rate*(1-readShare)*(wf.HTTPCPUUs+wf.PgbenchCPUUs+workflowUs)
	return round(us / 1e6 / float64(cores))
}
