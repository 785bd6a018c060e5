package api

import (
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// observe names each request's server span after its operation and
// records its latency by operation and status.
func observe(mp metric.MeterProvider) func(huma.Context, func(huma.Context)) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	duration, _ := mp.Meter("dealcast/api").Float64Histogram("dealcast.http.server.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time to answer an API request, by operation and status."),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		span := trace.SpanFromContext(ctx.Context())
		span.SetName(op.Method + " " + op.Path)
		span.SetAttributes(attribute.String("http.route", op.Path), attribute.String("dealcast.operation", op.OperationID))
		start := time.Now()
		next(ctx)
		duration.Record(ctx.Context(), time.Since(start).Seconds(), metric.WithAttributes(
			attribute.String("operation", op.OperationID),
			attribute.String("status", strconv.Itoa(ctx.Status())),
		))
	}
}
