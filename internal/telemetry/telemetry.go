// Package telemetry sets up OpenTelemetry for the process: metrics served
// in Prometheus text format at /metrics, and traces exported over OTLP
// when OTEL_EXPORTER_OTLP_ENDPOINT is set (otherwise spans are made but
// not recorded, so trace context still flows to Temporal and to webhook
// receivers at little cost).
package telemetry

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds the process's providers.
type Telemetry struct {
	Tracer   trace.TracerProvider
	Meter    metric.MeterProvider
	registry *prometheus.Registry
	// exporting says spans go somewhere (an OTLP endpoint, or a test's
	// exporter).
	exporting bool
	shutdown  []func(context.Context) error
}

// Options configure Setup.
type Options struct {
	Service string
	// SpanExporter overrides the OTLP exporter (tests use an in-memory one).
	SpanExporter sdktrace.SpanExporter
}

// Setup builds the providers and installs them as the global ones, with
// W3C trace context propagation.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName(o.Service))
	t := &Telemetry{registry: prometheus.NewRegistry()}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	exp, err := otelprom.New(otelprom.WithRegisterer(t.registry))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	spans := o.SpanExporter
	if spans == nil && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		// The exporter reads its endpoint, headers and TLS settings from
		// the standard OTEL_EXPORTER_OTLP_* variables.
		if spans, err = otlptracegrpc.New(ctx); err != nil {
			return nil, err
		}
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	t.exporting = spans != nil
	if spans != nil {
		topts = append(topts, sdktrace.WithBatcher(spans))
	} else if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		// Nothing exports spans, so none is recorded: each request still
		// gets a trace and span ID that flow to Temporal and to receivers,
		// without the cost of attributes, events and timings nobody will
		// read.
		topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	t.Tracer = tp
	t.shutdown = append(t.shutdown, tp.Shutdown)

	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return t, nil
}

// Exporting reports whether spans are exported anywhere.
func (t *Telemetry) Exporting() bool { return t.exporting }

// MetricsHandler serves the metrics in Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Flush exports the spans ended so far.
func (t *Telemetry) Flush(ctx context.Context) error {
	if tp, ok := t.Tracer.(*sdktrace.TracerProvider); ok {
		return tp.ForceFlush(ctx)
	}
	return nil
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
