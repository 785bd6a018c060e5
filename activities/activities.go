// Package activities does the I/O of webhook delivery: it loads an event
// and its recipients, sends the signed requests in parallel and records
// every outcome in one batched write. Workflows in package workflows
// decide when to call it.
package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// Activities carries what delivery needs; the worker registers one filled
// in, workflows call its methods through a nil *Activities.
type Activities struct {
	Store  *store.Store
	Sender *webhook.Sender
	Sealer *webhook.Sealer
	// Concurrency bounds the requests in flight within one round.
	Concurrency int
	// PerBuyer bounds the requests in flight to one buyer's endpoints
	// within one round (DefaultPerBuyer when zero).
	PerBuyer int
	// SpanlessAttempts makes no client span per attempt: the receiver's
	// traceparent then names the activity's span, in the same trace. For
	// processes that export no spans, where a span per delivery is work
	// nobody reads.
	SpanlessAttempts bool
	// Delivery, when set, hands the events activities write (invoice.overdue,
	// an auction's opening and close) to delivery at once; without it the
	// outbox sweeper does, seconds later.
	Delivery Delivery
	// InvoiceTerms is how long the winner of an auction has to pay
	// (config.DefaultInvoiceTerms when zero).
	InvoiceTerms time.Duration
}

// RoundInput asks for one page of one delivery round of an event.
type RoundInput struct {
	EventID string
	// Retry selects the event's pending deliveries (re-checked against
	// grants and endpoints) instead of its recipients as they are now.
	Retry bool
	// After is the previous page's Next.
	After string
	// Upto ends a first round's page at that recipient (a cut of
	// PlanPages); empty for no end.
	Upto  string
	Limit int
	// NextAttemptIn is when the workflow will try again after this round,
	// recorded on pending deliveries for buyers to see.
	NextAttemptIn time.Duration
	// Final marks the last round of the schedule: what fails now has failed.
	Final bool
}

// RoundResult summarises one page of a round.
type RoundResult struct {
	Sent      int
	Succeeded int
	Failed    int
	Pending   int
	// RetryAfter is the longest Retry-After a receiver asked for.
	RetryAfter time.Duration
	// Next is where the round's next page continues (an endpoint ID in
	// retry rounds, a buyer and endpoint ID in the first); empty when the
	// round is done.
	Next string
}

// DeliverRound sends an event to one page of its targets and records the
// outcomes. Sending is concurrent; the results are written in one statement.
// An activity retry resumes: recipients already reached are skipped.
func (a *Activities) DeliverRound(ctx context.Context, in RoundInput) (RoundResult, error) {
	out, found, err := a.deliver(ctx, []RoundInput{in})
	if err != nil {
		return RoundResult{}, err
	}
	if !found[0] {
		return RoundResult{}, temporal.NewNonRetryableApplicationError("event not found", "EventNotFound", store.ErrNotFound)
	}
	return out[0], nil
}

// DeliverPages runs DeliverRound for several events at once (a batch
// workflow's first pages) and returns their results in the same order,
// with three database round trips for them all: the events, their
// targets, and every outcome in one statement. An event deleted since it
// was committed has nothing to deliver. Any failure fails the whole call,
// whose retry resumes every event: the recipients already reached are
// skipped.
func (a *Activities) DeliverPages(ctx context.Context, pages []RoundInput) ([]RoundResult, error) {
	out, _, err := a.deliver(ctx, pages)
	return out, err
}

// deliver runs pages, reporting which of their events exist. A page of an
// event that an earlier page of the call names shares that page's result:
// a batch names each event once, and sending it twice would be a duplicate.
func (a *Activities) deliver(ctx context.Context, pages []RoundInput) ([]RoundResult, []bool, error) {
	ids := make([]string, len(pages))
	for i, p := range pages {
		if p.Limit <= 0 {
			return nil, nil, temporal.NewNonRetryableApplicationError("limit must be positive", "BadInput", nil)
		}
		ids[i] = p.EventID
	}
	evs, err := a.Store.Events(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]store.EventRecord, len(evs))
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	first := map[string]int{} // event ID → its page in run
	var (
		run     []RoundInput
		queries []store.PageQuery
	)
	for _, p := range pages {
		ev, ok := byID[p.EventID]
		if _, dup := first[p.EventID]; !ok || dup {
			continue
		}
		first[p.EventID] = len(run)
		run = append(run, p)
		queries = append(queries, store.PageQuery{Event: ev, Retry: p.Retry, After: p.After, Upto: p.Upto, Limit: p.Limit})
	}
	results, err := a.run(ctx, run, queries)
	if err != nil {
		return nil, nil, err
	}
	out, found := make([]RoundResult, len(pages)), make([]bool, len(pages))
	for i, p := range pages {
		if j, ok := first[p.EventID]; ok {
			out[i], found[i] = results[j], true
		}
	}
	return out, found, nil
}

// run sends each page (pages[i] read as queries[i]) and records every
// outcome in one statement.
func (a *Activities) run(ctx context.Context, pages []RoundInput, queries []store.PageQuery) ([]RoundResult, error) {
	if len(queries) == 0 {
		return nil, nil
	}
	targets, err := a.Store.Pages(ctx, queries)
	if err != nil {
		return nil, err
	}
	results := make([]RoundResult, len(queries))
	rounds := make([]store.Round, len(queries))
	var g errgroup.Group
	g.SetLimit(pagesInFlight)
	for j, q := range queries {
		g.Go(func() error {
			results[j], rounds[j] = a.page(ctx, q.Event, targets[j], pages[j])
			return nil
		})
	}
	_ = g.Wait()
	if err := a.Store.RecordRounds(ctx, rounds); err != nil {
		return nil, err
	}
	return results, nil
}

// page sends ev to one page of targets and sums up the round.
func (a *Activities) page(ctx context.Context, ev store.EventRecord, targets []store.Target, in RoundInput) (RoundResult, store.Round) {
	outcomes := a.send(ctx, ev, targets, in)
	var res RoundResult
	for _, o := range outcomes {
		res.RetryAfter = max(res.RetryAfter, o.retryAfter)
	}
	attempts := make([]store.Attempt, len(outcomes))
	for i, o := range outcomes {
		if o.NextAttemptAt != nil && res.RetryAfter > in.NextAttemptIn {
			// The workflow waits for the longest Retry-After of the round
			// before retrying any of its deliveries: show that time (the
			// workflow corrects pages that ran before a longer one).
			next := o.NextAttemptAt.Add(res.RetryAfter - max(in.NextAttemptIn, o.retryAfter))
			o.NextAttemptAt = &next
		}
		attempts[i] = o.Attempt
		if o.Counted {
			res.Sent++
		}
		switch o.Status {
		case store.DeliverySucceeded:
			res.Succeeded++
		case store.DeliveryFailed:
			res.Failed++
		case store.DeliveryPending:
			res.Pending++
		}
	}
	if len(targets) == in.Limit {
		if last := targets[len(targets)-1]; in.Retry {
			res.Next = last.EndpointID
		} else {
			res.Next = store.RecipientsCursor(last)
		}
	}
	return res, store.Round{Event: ev, Attempts: attempts}
}

// pagesInFlight bounds the events of one DeliverPages call handled at
// once, each with up to Concurrency requests in flight.
const pagesInFlight = 16

// PlanInput asks where a first round's pages after After begin.
type PlanInput struct {
	EventID string
	After   string
	Limit   int
}

// PlanPages returns the cursors that split the event's recipients after
// in.After into runs of in.Limit: the workflow sends each run's pages
// alongside the others'. An event deleted since has none.
func (a *Activities) PlanPages(ctx context.Context, in PlanInput) ([]string, error) {
	ev, err := a.Store.Event(ctx, in.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return a.Store.RecipientCuts(ctx, ev, in.After, in.Limit)
}

// PostponeInput moves an event's pending deliveries' next attempt.
type PostponeInput struct {
	EventID string
	Until   time.Time
}

// PostponeRetries shows on the event's pending deliveries that the next
// round comes no sooner than in.Until.
func (a *Activities) PostponeRetries(ctx context.Context, in PostponeInput) error {
	return a.Store.PostponePending(ctx, in.EventID, in.Until)
}

// outcome is one target's attempt and the wait its receiver asked for.
type outcome struct {
	store.Attempt
	retryAfter time.Duration
}

// send delivers ev to every target, at most Concurrency at a time, and
// returns the outcomes in target order.
//
// Buyers are served fairly: requests start in round-robin order across
// buyers, and one buyer has at most PerBuyer requests in flight, so a
// buyer whose many endpoints hang holds a few of the round's slots, not
// all of them, and other buyers' deliveries are not held behind it.
func (a *Activities) send(ctx context.Context, ev store.EventRecord, targets []store.Target, in RoundInput) []outcome {
	out := make([]outcome, len(targets))
	sem := make(chan struct{}, max(a.Concurrency, 1))
	perBuyer := a.PerBuyer
	if perBuyer <= 0 {
		perBuyer = DefaultPerBuyer
	}
	buyerSem := map[string]chan struct{}{}
	var wg sync.WaitGroup
	// next_attempt_at is reckoned from the round's start.
	now := time.Now()
	for _, i := range fairOrder(targets) {
		t := targets[i]
		if t.Cancelled != "" {
			reason := "not attempted: " + t.Cancelled
			out[i] = outcome{Attempt: store.Attempt{EndpointID: t.EndpointID, OwnerID: t.OwnerID, OwnerRole: t.OwnerRole, Status: store.DeliveryFailed, Error: &reason}}
			continue
		}
		bs, ok := buyerSem[t.OwnerID]
		if !ok {
			bs = make(chan struct{}, perBuyer)
			buyerSem[t.OwnerID] = bs
		}
		wg.Add(1)
		senders.Go(func() {
			defer wg.Done()
			bs <- struct{}{}
			defer func() { <-bs }()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = a.attempt(ctx, ev, t, in, now)
			activity.RecordHeartbeat(ctx, i)
		})
	}
	wg.Wait()
	return out
}

// DefaultPerBuyer is how many requests of one round may be in flight to
// one buyer's endpoints when Activities.PerBuyer is unset.
const DefaultPerBuyer = 4

// fairOrder returns target indexes taking each buyer's first endpoint,
// then each buyer's second, and so on.
func fairOrder(targets []store.Target) []int {
	var buyers []string
	byBuyer := map[string][]int{}
	for i, t := range targets {
		if _, ok := byBuyer[t.OwnerID]; !ok {
			buyers = append(buyers, t.OwnerID)
		}
		byBuyer[t.OwnerID] = append(byBuyer[t.OwnerID], i)
	}
	order := make([]int, 0, len(targets))
	for round := 0; len(order) < len(targets); round++ {
		for _, b := range buyers {
			if idx := byBuyer[b]; round < len(idx) {
				order = append(order, idx[round])
			}
		}
	}
	return order
}

// attempt sends ev to one target and classifies the result.
func (a *Activities) attempt(ctx context.Context, ev store.EventRecord, t store.Target, in RoundInput, now time.Time) outcome {
	o := outcome{Attempt: store.Attempt{EndpointID: t.EndpointID, OwnerID: t.OwnerID, OwnerRole: t.OwnerRole, Counted: true}}
	secrets, err := a.secrets(t)
	if err != nil {
		// Most likely this worker's DEALCAST_SECRET_KEY differs from the
		// API's: a configuration error, so the delivery stays pending and
		// is retried on the schedule once the key is put right.
		msg := "cannot read the endpoint's signing secret"
		o.Status, o.Error, o.Counted = store.DeliveryPending, &msg, false
		if in.Final {
			o.Status = store.DeliveryFailed
		} else {
			next := now.Add(in.NextAttemptIn).UTC()
			o.NextAttemptAt = &next
		}
		activity.GetLogger(ctx).Error("unsealing webhook secret failed", "endpoint", t.EndpointID, "err", err)
		return o
	}
	// A client span per attempt, whose context travels to the receiver as
	// traceparent: the buyer's side can join the seller's request's trace.
	span := trace.SpanFromContext(context.Background()) // a no-op span
	if !a.SpanlessAttempts {
		ctx, span = tracer.Start(ctx, "webhook POST", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("dealcast.event_id", ev.ID), attribute.String("dealcast.endpoint_id", t.EndpointID)))
		defer span.End()
	}
	headers := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(headers))
	// webhook-timestamp is the attempt's own time: receivers reject
	// signatures whose timestamp is far from their clock.
	r := a.Sender.Send(ctx, webhook.Request{URL: t.URL, MsgID: ev.ID, Timestamp: time.Now(), Body: ev.Payload, Secrets: secrets, Headers: headers})
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", r.StatusCode), attribute.String("dealcast.outcome", string(r.Outcome)))
		if r.Outcome != webhook.Succeeded {
			span.SetStatus(codes.Error, r.Err)
		}
	}
	recordOutcome(ctx, ev, r)
	if r.StatusCode > 0 {
		code := int32(r.StatusCode)
		o.StatusCode = &code
	}
	if r.Err != "" {
		msg := r.Err
		o.Error = &msg
	}
	switch r.Outcome {
	case webhook.Succeeded:
		o.Status = store.DeliverySucceeded
	case webhook.Gone:
		o.Status, o.Gone = store.DeliveryFailed, true
	case webhook.Refused:
		// The URL or the address it resolved to is forbidden: another
		// attempt with the same settings cannot succeed.
		o.Status = store.DeliveryFailed
	default:
		o.Status = store.DeliveryPending
		o.retryAfter = r.RetryAfter
		if in.Final {
			o.Status = store.DeliveryFailed
		} else {
			next := now.Add(max(in.NextAttemptIn, r.RetryAfter)).UTC()
			o.NextAttemptAt = &next
		}
	}
	return o
}

// secrets opens the endpoint's current secret and, during a rotation's
// grace period, the previous one: both sign each delivery.
func (a *Activities) secrets(t store.Target) ([][]byte, error) {
	out := make([][]byte, 0, 2)
	for _, sealed := range [][]byte{t.Secret, t.PreviousSecret} {
		if sealed == nil {
			continue
		}
		plain, err := a.Sealer.Open(sealed)
		if err != nil {
			return nil, err
		}
		raw, err := webhook.DecodeSecret(plain)
		if err != nil {
			return nil, fmt.Errorf("decode secret: %w", err)
		}
		out = append(out, raw)
	}
	return out, nil
}
