package delivery

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/dealcast/dealcast/internal/store"
)

// BehindAfter is the outbox lag past which dealcast.delivery.behind says
// delivery is behind: writes are still accepted (they are durable), but
// buyers hear of changes late.
const BehindAfter = 30 * time.Second

// RegisterGauges reports the outbox lag (age of the oldest event not yet
// handed to delivery), the outbox backlog (how many), whether delivery is
// behind, and the retry queue depth (deliveries pending a retry), read
// from the database when metrics are scraped.
func RegisterGauges(st *store.Store) error {
	m := otel.Meter("github.com/dealcast/dealcast/delivery")
	lag, err := m.Float64ObservableGauge("dealcast.outbox.lag",
		metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest committed event not yet handed to delivery; 0 when none waits."))
	if err != nil {
		return err
	}
	backlog, err := m.Int64ObservableGauge("dealcast.outbox.backlog",
		metric.WithDescription("Committed events not yet handed to delivery."))
	if err != nil {
		return err
	}
	behind, err := m.Int64ObservableGauge("dealcast.delivery.behind",
		metric.WithDescription("1 when the outbox lag exceeds 30 s: delivery is not keeping up with writes."))
	if err != nil {
		return err
	}
	depth, err := m.Int64ObservableGauge("dealcast.webhook.retry_queue",
		metric.WithDescription("Deliveries pending a retry."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		waiting, oldest, err := st.Outbox(ctx)
		if err != nil {
			return err
		}
		age := 0.0
		if oldest != nil {
			age = max(time.Since(*oldest).Seconds(), 0)
		}
		o.ObserveFloat64(lag, age)
		late := int64(0)
		if age > BehindAfter.Seconds() {
			late = 1
		}
		o.ObserveInt64(behind, late)
		o.ObserveInt64(backlog, waiting)
		n, err := st.PendingDeliveries(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(depth, n)
		return nil
	}, lag, backlog, behind, depth)
	return err
}

// batches counts the events handed to delivery workflows and how many
// shared each start: the delivery rate and how much batching saves.
var batches = sync.OnceValue(func() (i struct {
	events metric.Int64Counter
	size   metric.Int64Histogram
}) {
	m := otel.Meter("github.com/dealcast/dealcast/delivery")
	i.events, _ = m.Int64Counter("dealcast.outbox.dispatched",
		metric.WithDescription("Committed events handed to delivery workflows."))
	i.size, _ = m.Int64Histogram("dealcast.delivery.batch_size",
		metric.WithDescription("Events per delivery workflow start."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64))
	return i
})

func recordBatch(ctx context.Context, n int) {
	i := batches()
	i.events.Add(ctx, int64(n))
	i.size.Record(ctx, int64(n))
}
