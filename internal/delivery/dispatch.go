// Package delivery hands outbox events to Temporal: right after commit for
// latency, and by a sweeper for anything that missed that path (a crash
// between commit and start, Temporal down), so nothing committed is lost.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// Search attributes set on Dealcast's workflows, so operators find a
// deal's deliveries, auctions and invoices in the Temporal UI. DealIds
// holds every deal of a batch and is set on every workflow (DealIds =
// "…" finds them all); DealId and EventType on those of one deal or event.
var (
	DealIDAttr       = temporal.NewSearchAttributeKeyKeyword("DealId")
	DealIDsAttr      = temporal.NewSearchAttributeKeyKeywordList("DealIds")
	EventTypeAttr    = temporal.NewSearchAttributeKeyKeyword("EventType")
	SearchAttributes = map[string]enumspb.IndexedValueType{
		"DealId":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"DealIds":   enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
		"EventType": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
)

// DealAttributes are the search attributes of a workflow of one deal.
func DealAttributes(dealID string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(DealIDAttr.ValueSet(dealID), DealIDsAttr.ValueSet([]string{dealID}))
}

// EventAttributes are the search attributes of an event's delivery workflow.
func EventAttributes(dealID, eventType string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(DealIDAttr.ValueSet(dealID), DealIDsAttr.ValueSet([]string{dealID}), EventTypeAttr.ValueSet(eventType))
}

// Dispatcher starts delivery workflows.
type Dispatcher struct {
	client client.Client
	store  *store.Store
	log    *slog.Logger
	// Eager asks Temporal to hand the first workflow task straight to a
	// worker in this process, saving a round trip through the task queue.
	eager     bool
	taskQueue string
	queue     chan queued
	linger    time.Duration
	busyRate  int

	mu      sync.Mutex
	started []string // event IDs started but not yet marked dispatched
	// overflow counts events the full queue left to the sweeper.
	overflow atomic.Int64
}

// queued is an event waiting for its workflow start, with the trace of
// the request that committed it.
type queued struct {
	ev   store.EventRef
	span trace.SpanContext
}

// Options configure a Dispatcher.
type Options struct {
	// Eager enables eager workflow start; only useful when a worker runs
	// in the same process with the same client.
	Eager bool
	// Queue is how many events may wait for a start; beyond it events are
	// left to the sweeper rather than blocking the API.
	Queue int
	// TaskQueue overrides TaskQueue (tests run isolated workers).
	TaskQueue string
	// Linger is how long a starter under load waits for a batch to fill
	// (DefaultLinger when zero; negative: never).
	Linger time.Duration
	// BusyRate is the events per second above which a starter lingers
	// (BusyRate when zero).
	BusyRate int
}

// DefaultLinger bounds what a change waits, under load only, for others
// to share its workflow: a workflow per 100 ms at most while the batch is
// not full, where starting at once would make a workflow of every few
// changes.
const DefaultLinger = 100 * time.Millisecond

// BusyRate is the rate of changes, per starter and second, above which a
// starter lingers. Below it every change is started at once: the latency
// of a quiet platform is what a workflow per change gives.
const BusyRate = 50

// NewDispatcher returns a dispatcher; call Run to start its goroutines.
func NewDispatcher(c client.Client, st *store.Store, log *slog.Logger, o Options) *Dispatcher {
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.TaskQueue == "" {
		o.TaskQueue = TaskQueue
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.BusyRate <= 0 {
		o.BusyRate = BusyRate
	}
	return &Dispatcher{client: c, store: st, log: log, eager: o.Eager, taskQueue: o.TaskQueue, queue: make(chan queued, o.Queue),
		linger: o.Linger, busyRate: o.BusyRate}
}

// Dispatch queues ev for a workflow start without blocking. When the queue
// is full the event stays in the outbox for the sweeper. The workflow
// joins the trace in ctx.
func (d *Dispatcher) Dispatch(ctx context.Context, ev store.EventRef) {
	select {
	case d.queue <- queued{ev: ev, span: trace.SpanContextFromContext(ctx)}:
	default:
		// Counted and reported once per flush, not logged per event: a
		// full queue means overload, when a line per request would add to it.
		d.overflow.Add(1)
	}
}

// Start starts the delivery workflow of ev, then does what an invoice
// event asks of its invoice's workflow, so that the outbox row guarantees
// both. A workflow that already exists (started before, even finished)
// counts as success.
func (d *Dispatcher) Start(ctx context.Context, ev store.EventRef) error {
	err := d.startDelivery(ctx, WorkflowID(ev.ID), EventAttributes(ev.DealID, ev.Type), WorkflowType,
		WorkflowInput{EventID: ev.ID, EventType: ev.Type, DealID: ev.DealID, LocalFirstPage: true})
	if err != nil {
		return err
	}
	// After the delivery's start, so the invoice's or the auction's
	// workflow does not delay the event's delivery.
	return d.followUp(ctx, ev)
}

// StartBatch starts one workflow that delivers every event of evs (one
// event alone gets its own, as Start does), then does what each event
// asks of its invoice's or auction's workflow.
func (d *Dispatcher) StartBatch(ctx context.Context, evs []store.EventRef) error {
	if len(evs) == 1 {
		if err := d.Start(ctx, evs[0]); err != nil {
			return err
		}
		recordBatch(ctx, 1)
		return nil
	}
	in := BatchInput{Events: make([]WorkflowInput, len(evs))}
	ids := make([]string, len(evs))
	var deals []string
	for i, ev := range evs {
		in.Events[i] = WorkflowInput{EventID: ev.ID, EventType: ev.Type, DealID: ev.DealID}
		ids[i] = ev.ID
		if !slices.Contains(deals, ev.DealID) {
			deals = append(deals, ev.DealID)
		}
	}
	err := d.startDelivery(ctx, BatchWorkflowID(ids), temporal.NewSearchAttributes(DealIDsAttr.ValueSet(deals)), BatchWorkflowType, in)
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) {
		// A batch the server refuses as such (a limit set lower than
		// Temporal's defaults) must not hold its events back: one by one.
		d.log.Warn("batch start refused; starting its events one by one", "events", len(evs), "err", err)
		for _, ev := range evs {
			if err := d.Start(ctx, ev); err != nil {
				return err
			}
			recordBatch(ctx, 1)
		}
		return nil
	}
	if err != nil {
		return err
	}
	recordBatch(ctx, len(evs))
	for _, ev := range evs {
		if err := d.followUp(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// startDelivery starts a delivery workflow once: one that already exists
// (started before, even finished) counts as success.
func (d *Dispatcher) startDelivery(ctx context.Context, id string, attrs temporal.SearchAttributes, workflowType string, input any) error {
	_, err := d.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                d.taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		EnableEagerStart:         d.eager,
		TypedSearchAttributes:    attrs,
	}, workflowType, input)
	if err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return err
	}
	return nil
}

// followUp does what ev asks of its auction's or invoice's workflow.
func (d *Dispatcher) followUp(ctx context.Context, ev store.EventRef) error {
	if ev.AuctionID != "" {
		return d.driveAuction(ctx, ev)
	}
	if ev.InvoiceID == "" {
		return nil
	}
	switch invoice.EventType(ev.Type) {
	case invoice.EventIssued:
		return d.startInvoice(ctx, ev)
	case invoice.EventPaid, invoice.EventVoided:
		return d.settleInvoice(ctx, ev)
	}
	return nil
}

// startInvoice starts the workflow that keeps the due date of the invoice
// ev announces.
func (d *Dispatcher) startInvoice(ctx context.Context, ev store.EventRef) error {
	return d.startOnce(ctx, invoice.WorkflowID(ev.InvoiceID), ev.DealID, invoice.WorkflowType,
		invoice.WorkflowInput{InvoiceID: ev.InvoiceID})
}

// settleInvoice tells the invoice's workflow that the invoice is paid or
// void, so it ends before its due date; the due-date re-read stays the
// safety net for a signal that finds no workflow.
func (d *Dispatcher) settleInvoice(ctx context.Context, ev store.EventRef) error {
	return d.signalIfRunning(ctx, invoice.WorkflowID(ev.InvoiceID), invoice.SettledSignal, ev.Type)
}

// driveAuction starts the workflow that keeps the clock of the auction ev
// announces (auction.created), or wakes it to read the auction again
// (closed by its seller, or cancelled).
func (d *Dispatcher) driveAuction(ctx context.Context, ev store.EventRef) error {
	if auction.EventType(ev.Type) == auction.EventCreated {
		return d.startOnce(ctx, auction.WorkflowID(ev.AuctionID), ev.DealID, auction.WorkflowType,
			auction.WorkflowInput{AuctionID: ev.AuctionID})
	}
	return d.signalIfRunning(ctx, auction.WorkflowID(ev.AuctionID), auction.ChangedSignal, ev.Type)
}

// startOnce starts a workflow of the deal dealID once: a workflow that
// already exists (started before, even finished) counts as success.
func (d *Dispatcher) startOnce(ctx context.Context, id, dealID, workflowType string, input any) error {
	_, err := d.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                d.taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes:    DealAttributes(dealID),
	}, workflowType, input)
	if err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return err
	}
	return nil
}

// signalIfRunning signals a workflow; one not found has ended, or is not
// started yet and reads the database first, so it needs no signal.
func (d *Dispatcher) signalIfRunning(ctx context.Context, id, signal string, payload any) error {
	err := d.client.SignalWorkflow(ctx, id, "", signal, payload)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	return err
}

// Starters is how many workflow starts a dispatcher has in flight. Events
// that arrive while a start is in flight join the next batch, so one
// starter makes the largest batches under load (the fewest Temporal
// actions per change), while a change that comes alone is still started
// at once.
const Starters = 1

// Run starts queued events with workers goroutines and marks them
// dispatched in batches, until ctx ends.
func (d *Dispatcher) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var recent rateWindow
			for {
				select {
				case <-ctx.Done():
					return
				case q := <-d.queue:
					batch := d.take(q)
					if d.linger > 0 && len(batch) < MaxBatch && recent.count(time.Now()) >= d.busyRate {
						batch = d.fill(ctx, batch, time.After(d.linger))
					}
					recent.add(time.Now(), len(batch))
					evs := make([]store.EventRef, len(batch))
					for i, b := range batch {
						evs[i] = b.ev
					}
					// The batch joins the trace of its first request.
					if err := d.StartBatch(trace.ContextWithSpanContext(ctx, q.span), evs); err != nil {
						d.log.Warn("starting delivery failed; the sweeper will retry", "events", len(evs), "first", evs[0].ID, "err", err)
						continue
					}
					d.mu.Lock()
					for _, ev := range evs {
						d.started = append(d.started, ev.ID)
					}
					d.mu.Unlock()
				}
			}
		}()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			d.flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			d.flush(ctx)
		}
	}
}

// take returns first and every event waiting behind it, up to MaxBatch:
// alone when changes are rare, so a change is started at once, and in
// batches when they come faster than starts, so starts stop being the
// bound.
func (d *Dispatcher) take(first queued) []queued {
	batch := []queued{first}
	for len(batch) < MaxBatch {
		select {
		case q := <-d.queue:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// fill adds events to batch as they arrive, until it is full or timeout
// fires.
func (d *Dispatcher) fill(ctx context.Context, batch []queued, timeout <-chan time.Time) []queued {
	for len(batch) < MaxBatch {
		select {
		case q := <-d.queue:
			batch = append(batch, q)
		case <-timeout:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// rateWindow counts the events a starter handed over in the last second.
type rateWindow struct {
	starts []rateStart
}

type rateStart struct {
	at     time.Time
	events int
}

func (w *rateWindow) add(at time.Time, events int) {
	w.forget(at)
	w.starts = append(w.starts, rateStart{at, events})
}

// count sums the events of the starts of the last second.
func (w *rateWindow) count(now time.Time) int {
	w.forget(now)
	n := 0
	for _, s := range w.starts {
		n += s.events
	}
	return n
}

// forget drops the starts older than a second, so the window stays small
// however long the load lasts.
func (w *rateWindow) forget(now time.Time) {
	old := 0
	for old < len(w.starts) && now.Sub(w.starts[old].at) > time.Second {
		old++
	}
	w.starts = w.starts[old:]
}

// flush marks started events dispatched in one statement. If it fails the
// sweeper starts them again, which Temporal refuses harmlessly.
func (d *Dispatcher) flush(ctx context.Context) {
	if n := d.overflow.Swap(0); n > 0 {
		d.log.Warn("dispatch queue full; the sweeper will start these events", "count", n)
	}
	d.mu.Lock()
	ids := d.started
	d.started = nil
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := d.store.MarkDispatched(ctx, ids); err != nil {
		d.log.Warn("marking events dispatched failed", "count", len(ids), "err", err)
	}
}

// Sweep starts, every interval, the events older than grace that were
// never marked dispatched, until ctx ends.
func (d *Dispatcher) Sweep(ctx context.Context, interval, grace time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := d.SweepOnce(ctx, grace); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("outbox sweep failed", "err", err)
			}
		} else if n > 0 {
			d.log.Info("outbox sweep started deliveries", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepParallelism is how many workflow starts the sweeper has in flight:
// one at a time, a backlog would drain at one start per round trip to the
// cluster (BenchmarkSweepBacklog measures it).
const sweepParallelism = 16

// SweepOnce starts the undispatched events older than grace and returns how many.
func (d *Dispatcher) SweepOnce(ctx context.Context, grace time.Duration) (int, error) {
	total := 0
	for {
		events, err := d.store.Undispatched(ctx, time.Now().Add(-grace), 500)
		if err != nil || len(events) == 0 {
			return total, err
		}
		ids, startErr := d.startAll(ctx, events)
		// The events started are marked even when another failed: the
		// rest stay for the next sweep.
		if err := d.store.MarkDispatched(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
		if startErr != nil {
			return total, startErr
		}
		if len(events) < 500 {
			return total, nil
		}
	}
}

// startAll starts events' workflows in batches of up to MaxBatch,
// sweepParallelism batches at a time, and returns the IDs of those
// started. After the first failure (Temporal is most likely down) it
// starts no more and returns that error.
func (d *Dispatcher) startAll(ctx context.Context, events []store.EventRef) ([]string, error) {
	var (
		mu      sync.Mutex
		started = make([]string, 0, len(events))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepParallelism)
	for batch := range slices.Chunk(events, MaxBatch) {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := d.StartBatch(gctx, batch); err != nil {
				return err
			}
			mu.Lock()
			for _, ev := range batch {
				started = append(started, ev.ID)
			}
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return started, err
}

// Redeliver makes the event's workflow run a round for its pending
// deliveries now: a signal to the running workflow, or a new run when the
// last one has finished.
func (d *Dispatcher) Redeliver(ctx context.Context, ev store.EventRef) error {
	_, err := d.client.SignalWithStartWorkflow(ctx, WorkflowID(ev.ID), RetrySignal, nil,
		client.StartWorkflowOptions{
			TaskQueue:             d.taskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			TypedSearchAttributes: EventAttributes(ev.DealID, ev.Type),
		}, WorkflowType, WorkflowInput{EventID: ev.ID, EventType: ev.Type, DealID: ev.DealID, Resume: true, Now: true})
	return err
}
