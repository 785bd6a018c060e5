package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
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
// server and worker process.
type WorkflowFloor struct {
	Workflows int `json:"workflows"`
	Starters  int `json:"starters"`
	// Seconds is the window whose CPU counts: the starts, until all are
	// closed in visibility, then the timer tasks' wait.
	Seconds      float64 `json:"seconds"`
	IdleCPUS     float64 `json:"idle_cpu_s"` // the idle background taken out
	MachineCPUUs float64 `json:"machine_cpu_us_per_workflow"`
	PerS         float64 `json:"workflows_per_s"` // cores / MachineCPUUs
	// ProcessCPUUs is this process's part of MachineCPUUs: the embedded
	// server, the SDK and the worker.
	ProcessCPUUs float64 `json:"process_cpu_us_per_workflow"`
}

const floorQueue = "dealcast-bench-workflow-floor"

func floorWorkflow(workflow.Context, delivery.WorkflowInput) error { return nil }

// workflowFloor measures the workflow floor once per run, by the first
// scenario that needs it, on an idle delivery side.
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
	idleRate, idleProcRate := idleRates(min(2*time.Second, r.cfg.duration()))

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
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	end := from.Add(time.Duration(min(c.Seconds, r.cfg.Seconds)) * time.Second)
	for range c.Starters {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				if err := start(); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				} else {
					started.Add(1)
				}
			}
		})
	}
	wg.Wait()
	lastStart := time.Now()
	if failed.Load() > 0 {
		return nil, fmt.Errorf("workflow floor: %d starts failed, first: %w", failed.Load(), firstErr)
	}
	n := int(started.Load())
	if err := r.waitClosed(ctx, ds.client, int64(n)); err != nil {
		return nil, err
	}
	// Each workflow task's start-to-close timeout is a timer task that the
	// server loads and discards when it fires, after the workflow closed.
	time.Sleep(time.Until(lastStart.Add(c.TimerWait)))
	window := time.Since(from).Seconds()
	f := &WorkflowFloor{Workflows: n, Starters: c.Starters, Seconds: round(window), IdleCPUS: round(idleRate * window)}
	if busy := lessIdle(machineBusy()-busy0, idleRate*window); n > 0 && busy > 0 {
		f.MachineCPUUs = round(busy / float64(n) * 1e6)
		f.PerS = round(float64(runtime.NumCPU()) * 1e6 / f.MachineCPUUs)
	}
	if proc := lessIdle(selfCPU()-proc0, idleProcRate*window); n > 0 && proc > 0 {
		f.ProcessCPUUs = round(proc / float64(n) * 1e6)
	}
	r.res.WorkflowFloor = f
	return f, nil
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
			return fmt.Errorf("workflow floor: %d workflows not all completed after %s (last error: %v)", n, r.cfg.DrainTimeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// dbFloor is the rate this machine could answer at if each request cost
// one HTTP floor request and one pgbench transaction of machine CPU: the
// ceiling of any endpoint making one round trip as cheap as pgbench's.
func dbFloor(res *ReadWriteResult, cores int) *DBFloor {
	if res.Floor == nil || res.Pgbench == nil || res.Floor.MachineCPUUs <= 0 || res.Pgbench.MachineCPUUs <= 0 || res.PgbenchTPS <= 0 {
		return nil
	}
	rps := float64(cores) * 1e6 / (res.Floor.MachineCPUUs + res.Pgbench.MachineCPUUs)
	return &DBFloor{HTTPCPUUs: res.Floor.MachineCPUUs, PgbenchCPUUs: res.Pgbench.MachineCPUUs, RPS: round(rps), Ratio: ratio(rps, res.PgbenchTPS)}
}

// withWorkflow adds one workflow floor per request: a write that also
// starts its delivery workflow.
func withWorkflow(d *DBFloor, wf *WorkflowFloor, pgbenchTPS float64, cores int) {
	if d == nil || wf == nil || wf.MachineCPUUs <= 0 || pgbenchTPS <= 0 {
		return
	}
	d.WorkflowCPUUs = wf.MachineCPUUs
	d.WithWorkflowRPS = round(float64(cores) * 1e6 / (d.HTTPCPUUs + d.PgbenchCPUUs + wf.MachineCPUUs))
	d.WithWorkflowRatio = ratio(d.WithWorkflowRPS, pgbenchTPS)
}

// floorShare is the machine's share that rate requests a second take at
// the measured floors: reads at read's database floor, writes at write's
// plus a workflow floor; 0 when either scenario did not measure its floor.
func floorShare(rate, readShare float64, read, write *ReadWriteResult, workflowUs float64, cores int) float64 {
	if read == nil || write == nil || read.DBFloor == nil || write.DBFloor == nil || workflowUs <= 0 {
		return 0
	}
	rf, wf := read.DBFloor, write.DBFloor
	us := rate*readShare*(rf.HTTPCPUUs+rf.PgbenchCPUUs) + rate*(1-readShare)*(wf.HTTPCPUUs+wf.PgbenchCPUUs+workflowUs)
	return round(us / 1e6 / float64(cores))
}

// deliveryFloor computes webhook_throughput's floor when the run measured
// its parts: the POST floor (or read's HTTP floor) and the workflow floor.
func (r *Results) deliveryFloor(cores int) {
	t, w := r.WebhookThroughput, r.WorkflowFloor
	if t == nil || w == nil || w.MachineCPUUs <= 0 || t.Buyers <= 0 {
		return
	}
	var exchange float64
	from := ""
	switch {
	case t.PostFloor != nil && t.PostFloor.MachineCPUUs > 0 && t.PostFloor.Errors == 0:
		exchange, from = t.PostFloor.MachineCPUUs, "post_floor"
	case r.Read != nil && r.Read.Floor != nil && r.Read.Floor.MachineCPUUs > 0:
		exchange, from = r.Read.Floor.MachineCPUUs, "read.http_floor"
	default:
		return
	}
	perS := func(perChange float64) float64 { return round(float64(cores) * 1e6 / perChange * float64(t.Buyers)) }
	per := w.MachineCPUUs + float64(t.Buyers)*exchange
	t.Floor = &DeliveryFloor{WorkflowCPUUs: w.MachineCPUUs, HTTPCPUUs: exchange, HTTPFrom: from, PerChangeCPUUs: round(per), DeliveriesPerS: perS(per)}
	if p := t.PostFloor; from == "post_floor" && p.BurstMachineCPUUs > 0 && p.BurstErrors == 0 {
		burst := w.MachineCPUUs + float64(t.Buyers)*p.BurstMachineCPUUs
		t.Floor.BurstHTTPCPUUs, t.Floor.BurstPerChangeCPUUs, t.Floor.BurstDeliveriesPerS = p.BurstMachineCPUUs, round(burst), perS(burst)
	}
}
