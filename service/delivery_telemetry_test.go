package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// TestOneTraceFromRequestToDelivery follows a deal creation from the API
// request through the outbox write, the workflow start, the workflow and
// its activity to the buyer's receiver, and checks the metrics that the
// same run produces. It sets the process-wide OpenTelemetry providers, so
// it does not run in parallel with other tests.
func TestOneTraceFromRequestToDelivery(t *testing.T) {
	tel, spans, err := processTelemetry()
	if err != nil {
		t.Fatal(err)
	}
	tracing, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := temporal.NewClientWithOptions(client.Options{
		Interceptors:   []interceptor.ClientInterceptor{tracing},
		MetricsHandler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{}),
	})
	t.Cleanup(c.Close)
	s := newStackWith(t, c, tel.MetricsHandler())
	if err := delivery.RegisterGauges(s.store); err != nil {
		t.Fatal(err)
	}

	sellerTok, r, receiverHeaders := s.buyerWithReceiver(t)

	s.createDeal(sellerTok, 1500)
	eventually(t, 10*time.Second, "the delivery", func() bool { return len(r.Arrivals()) == 1 })
	traceparent, sc := receivedTrace(t, receiverHeaders)
	if !sc.IsValid() {
		t.Fatalf("receiver got no valid traceparent: %q", traceparent)
	}

	// Every step carries the trace ID the receiver saw.
	want := map[string]bool{
		"POST /v1/deals":             false, // the API request
		"query INSERT":               false, // the deal and outbox writes (pgx)
		"StartWorkflow:DeliverEvent": false,
		"RunWorkflow:DeliverEvent":   false,
		"RunActivity:DeliverRound":   false,
		"webhook POST":               false, // the attempt to the receiver
	}
	defer func() {
		if t.Failed() {
			for _, sp := range spans.GetSpans() {
				t.Logf("span %q trace=%s parent=%s", sp.Name, sp.SpanContext.TraceID(), sp.Parent.SpanID())
			}
			t.Logf("receiver trace %s", sc.TraceID())
		}
	}()
	eventually(t, 10*time.Second, "every span of the trace", func() bool {
		_ = tel.Flush(context.Background())
		for _, sp := range spans.GetSpans() {
			if sp.SpanContext.TraceID() != sc.TraceID() {
				continue
			}
			for name := range want {
				if sp.Name == name || strings.HasPrefix(sp.Name, name+" ") {
					want[name] = true
				}
			}
		}
		for _, ok := range want {
			if !ok {
				return false
			}
		}
		return true
	})

	// The metrics endpoint speaks Prometheus text and has the service's
	// own series and the Temporal SDK's.
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for _, name := range []string{
		"dealcast_http_server_duration_seconds",
		"dealcast_webhook_attempts_total",
		"dealcast_webhook_commit_to_delivery_seconds",
		"dealcast_outbox_lag_seconds",
		"dealcast_outbox_backlog",
		"dealcast_delivery_behind",
		"dealcast_outbox_dispatched_total",
		"dealcast_delivery_batch_size",
		"dealcast_webhook_retry_queue",
	} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	// Attempts are counted by outcome; this test's delivery succeeded.
	succeeded := false
	if f := families["dealcast_webhook_attempts_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "succeeded" && m.GetCounter().GetValue() >= 1 {
					succeeded = true
				}
			}
		}
	}
	if !succeeded {
		t.Error(`no dealcast_webhook_attempts_total{outcome="succeeded"} count`)
	}
	temporalSeries := 0
	for name := range families {
		if strings.HasPrefix(name, "temporal_") {
			temporalSeries++
		}
	}
	if temporalSeries == 0 {
		t.Error("no Temporal SDK metrics")
	}
	if t.Failed() {
		names := make([]string, 0, len(families))
		for n := range families {
			names = append(names, n)
		}
		t.Logf("metrics served: %v", names)
	}

	// Delivery falls behind (no dispatcher hands events over, and the
	// oldest waits longer than BehindAfter): writes are still accepted,
	// and the gauges say so.
	s.swapDelivery(delivery.NewDispatcher(c, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue}))
	late := s.createDeal(sellerTok, 900)
	if _, err := testDB.Pool.Exec(context.Background(), `UPDATE events SET created_at = created_at - $2::INTERVAL WHERE deal_id = $1`,
		late.ID, (2 * delivery.BehindAfter).String()); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if families, err = parser.TextToMetricFamilies(rec.Body); err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		if f := families[name]; f != nil && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
		t.Fatalf("gauge %s missing", name)
		return 0
	}
	if got := gauge("dealcast_delivery_behind"); got != 1 {
		t.Errorf("dealcast_delivery_behind = %v with an event waiting %v, want 1", got, 2*delivery.BehindAfter)
	}
	if got := gauge("dealcast_outbox_backlog"); got < 1 {
		t.Errorf("dealcast_outbox_backlog = %v, want at least the waiting event", got)
	}
	if got := gauge("dealcast_outbox_lag_seconds"); got < (2 * delivery.BehindAfter).Seconds() {
		t.Errorf("dealcast_outbox_lag_seconds = %v, want at least %v", got, (2 * delivery.BehindAfter).Seconds())
	}
}

// processTelemetry sets the process-wide providers once: tracers taken
// from the global provider (pgx's, the activities') stay bound to the
// first one installed, as they would in a real process.
var (
	telemetryOnce sync.Once
	testTelemetry *telemetry.Telemetry
	testSpans     *tracetest.InMemoryExporter
	telemetryErr  error
)

func processTelemetry() (*telemetry.Telemetry, *tracetest.InMemoryExporter, error) {
	telemetryOnce.Do(func() {
		testSpans = tracetest.NewInMemoryExporter()
		testTelemetry, telemetryErr = telemetry.Setup(context.Background(), telemetry.Options{Service: "dealcast-test", SpanExporter: testSpans})
	})
	return testTelemetry, testSpans, telemetryErr
}

// TestCallerTraceReachesReceiverWithoutServerSpans: with SpanlessRequests
// (the API of a process that exports no spans) the caller's traceparent
// still reaches the workflow and the receiver.
func TestCallerTraceReachesReceiverWithoutServerSpans(t *testing.T) {
	if _, _, err := processTelemetry(); err != nil {
		t.Fatal(err)
	}
	tracing, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := temporal.NewClientWithOptions(client.Options{Interceptors: []interceptor.ClientInterceptor{tracing}})
	t.Cleanup(c.Close)
	s := newStackWith(t, c, nil)
	s.deps.SpanlessRequests = true
	s.rebuild()

	sellerTok, r, receiverHeaders := s.buyerWithReceiver(t)

	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodPost, "/v1/deals", strings.NewReader(
		`{"name":"Deal","currency":"gbp","total_price":1500,"items":[{"id":"i1","name":"Item","price":1500}]}`))
	req.Header.Set("Authorization", "Bearer "+sellerTok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	eventually(t, 10*time.Second, "the delivery", func() bool { return len(r.Arrivals()) == 1 })
	traceparent, sc := receivedTrace(t, receiverHeaders)
	if sc.TraceID().String() != callerTrace {
		t.Errorf("receiver's traceparent %q is not in the caller's trace %s", traceparent, callerTrace)
	}
}

// receivedTrace is the traceparent of the first request a receiver
// recorded, and the span context it names.
func receivedTrace(t *testing.T, headers <-chan http.Header) (string, trace.SpanContext) {
	t.Helper()
	select {
	case h := <-headers:
		tp := h.Get("traceparent")
		return tp, trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(http.Header{"Traceparent": {tp}})))
	case <-time.After(time.Second):
		t.Fatal("no headers recorded")
		return "", trace.SpanContext{}
	}
}

// buyerWithReceiver makes a seller and a buyer it authorises, whose
// endpoint is a receiver that also passes on each request's headers.
func (s *stack) buyerWithReceiver(t *testing.T) (sellerToken string, r *webhooktest.Receiver, headers chan http.Header) {
	seller, sellerTok := s.account(store.RoleSeller)
	buyer, buyerTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, buyer)
	headers = make(chan http.Header, 4)
	r = webhooktest.NewReceiver(t, webhooktest.WithOnArrival(func(a webhooktest.Arrival) {
		select {
		case headers <- a.Header:
		default:
		}
	}))
	s.endpoint(buyerTok, r.URL())
	return sellerTok, r, headers
}
