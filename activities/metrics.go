package activities

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

var tracer = otel.Tracer("github.com/dealcast/dealcast/activities")

// instruments are made on first use from the global meter provider, which
// the process sets up before any delivery runs.
var instruments = sync.OnceValue(func() (i struct {
	attempts metric.Int64Counter
	latency  metric.Float64Histogram
}) {
	m := otel.Meter("github.com/dealcast/dealcast/activities")
	i.attempts, _ = m.Int64Counter("dealcast.webhook.attempts",
		metric.WithDescription("Webhook delivery attempts, by outcome (succeeded, retry, gone, refused)."))
	i.latency, _ = m.Float64Histogram("dealcast.webhook.commit_to_delivery",
		metric.WithUnit("s"),
		metric.WithDescription("Time from the change's commit to a receiver's 2xx."),
		metric.WithExplicitBucketBoundaries(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
	return i
})

// outcomeAttrs holds the attribute set of each outcome, made once: every
// attempt records its outcome, and building and hashing a set each time
// would put that work (and the stack growth it forces on each fresh
// sending goroutine) on every delivery.
var outcomeAttrs = func() map[webhook.Outcome]metric.AddOption {
	m := map[webhook.Outcome]metric.AddOption{}
	for _, o := range []webhook.Outcome{webhook.Succeeded, webhook.Retry, webhook.Gone, webhook.Refused} {
		m[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", string(o))))
	}
	return m
}()

func recordOutcome(ctx context.Context, ev store.EventRecord, r webhook.Result) {
	i := instruments()
	opt, ok := outcomeAttrs[r.Outcome]
	if !ok { // an outcome added without an entry above
		opt = metric.WithAttributes(attribute.String("outcome", string(r.Outcome)))
	}
	i.attempts.Add(ctx, 1, opt)
	if r.Outcome == webhook.Succeeded {
		i.latency.Record(ctx, time.Since(ev.CreatedAt).Seconds())
	}
}
