package delivery

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/dealcast/dealcast/internal/store"
)

// RegisterGauges reports the outbox lag (age of the oldest event not yet
// handed to delivery) and the retry queue depth (deliveries pending a
// retry), read from the database when metrics are scraped.
func RegisterGauges(st *store.Store) error {
	m := otel.Meter("github.com/dealcast/dealcast/delivery")
	lag, err := m.Float64ObservableGauge("dealcast.outbox.lag",
		metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest committed event not yet handed to delivery; 0 when none waits."))
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
		oldest, err := st.OldestUndispatched(ctx)
		if err != nil {
			return err
		}
		age := 0.0
		if oldest != nil {
			age = max(time.Since(*oldest).Seconds(), 0)
		}
		o.ObserveFloat64(lag, age)
		n, err := st.PendingDeliveries(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(depth, n)
		return nil
	}, lag, depth)
	return err
}
