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
	ev, err := a.Store.Event(ctx, in.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return RoundResult{}, temporal.NewNonRetryableApplicationError("event not found", "EventNotFound", err)
	}
	if err != nil {
		return RoundResult{}, err
	}
	if in.Limit <= 0 {
		return RoundResult{}, temporal.NewNonRetryableApplicationError("limit must be positive", "BadInput", nil)
	}
	var targets []store.Target
	if in.Retry {
		targets, err = a.Store.PendingTargets(ctx, ev, in.After, in.Limit)
	} else {
		targets, err = a.Store.Recipients(ctx, ev, in.After, in.Limit)
	}
	if err != nil {
		return RoundResult{}, err
	}
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
	if err := a.Store.RecordAttempts(ctx, ev, attempts); err != nil {
		return RoundResult{}, err
	}
	if in.Limit > 0 && len(targets) == in.Limit {
		if last := targets[len(targets)-1]; in.Retry {
			res.Next = last.EndpointID
		} else {
			res.Next = store.RecipientsCursor(last)
		}
	}
	return res, nil
}

// DeliverPages runs DeliverRound for several events at once (a batch
// workflow's first pages) and returns their results in the same order. An
// event deleted since it was committed has nothing to deliver. Any other
// failure fails the whole call, whose retry resumes every event: the
// recipients already reached are skipped. A failing event does not cut
// the others short, so their outcomes are recorded and not sent again.
func (a *Activities) DeliverPages(ctx context.Context, pages []RoundInput) ([]RoundResult, error) {
	out := make([]RoundResult, len(pages))
	var g errgroup.Group
	g.SetLimit(pagesInFlight)
	for i, p := range pages {
		g.Go(func() error {
			res, err := a.DeliverRound(ctx, p)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			out[i] = res
			return err
		})
	}
	return out, g.Wait()
}

// pagesInFlight bounds the events of one DeliverPages call handled at
// once, each with up to Concurrency requests in flight.
const pagesInFlight = 16

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
