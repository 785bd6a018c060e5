// Package api is Dealcast's HTTP surface: huma v2 operations, one file per
// resource. Handlers parse, authorise, call the store and map its errors to
// RFC 9457 problems; the rules themselves live in internal/.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"

	"github.com/dealcast/dealcast/api/reference"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// MaxBody is the largest request body accepted; larger ones get 413.
const MaxBody = 1 << 20

// errNotUTF8 refuses a body that is not UTF-8.
var errNotUTF8 = errors.New("the request body is not valid UTF-8")

// errLoneSurrogate refuses a \u escape of half a UTF-16 pair, which
// encoding/json would store as U+FFFD: text the client never sent.
var errLoneSurrogate = errors.New(`the request body has a \u escape of an unpaired UTF-16 surrogate, which is no character`)

func unmarshalUTF8(data []byte, v any) error {
	if !utf8.Valid(data) {
		return explainBodyError(data, errNotUTF8)
	}
	if loneSurrogate(data) {
		return explainBodyError(data, errLoneSurrogate)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return explainBodyError(data, err)
	}
	return nil
}

// Deps are what the operations need.
type Deps struct {
	Store    *store.Store
	Verifier *auth.Verifier
	Logger   *slog.Logger
	// Ready reports whether the service's dependencies answer (GET /readyz).
	Ready func(context.Context) error
	// Delivery hands new events to webhook delivery; nil when there is none
	// (the events stay in the outbox for a worker's sweeper).
	Delivery Delivery
	// Sealer encrypts webhook secrets at rest.
	Sealer *webhook.Sealer
	// AllowPrivateWebhooks lets endpoint URLs be plain http or private
	// addresses (development and tests only).
	AllowPrivateWebhooks bool
	// Meter records request metrics; nil records nothing.
	Meter metric.MeterProvider
	// Metrics serves GET /metrics; nil leaves it out.
	Metrics http.Handler
	// RateLimit bounds each caller's request rate; the zero value is no limit.
	RateLimit RateLimit
	// SpanlessRequests reads each request's W3C trace context, which then
	// flows on to Temporal and to webhook receivers, but makes no server
	// span. For processes that export no spans: a span nobody samples still
	// costs its attributes on every request.
	SpanlessRequests bool
	// InvoiceTerms is how long a buyer has to pay; zero means
	// config.DefaultInvoiceTerms.
	InvoiceTerms time.Duration
}

// Delivery is the part of webhook delivery the API drives.
type Delivery interface {
	// Dispatch starts delivering a committed event, without blocking;
	// ctx carries the request's trace, which delivery continues.
	Dispatch(context.Context, store.EventRef)
	// Redeliver runs a delivery round for the event's pending deliveries now.
	Redeliver(context.Context, store.EventRef) error
}

// Bounds on what a problem echoes back. huma puts the offending value in
// each error, and for an unexpected property that value is the whole
// object: a 1 MiB body with 20,000 unknown keys would be answered with
// 20,000 copies of itself. Problems name the field; they need not repeat it.
const (
	maxProblemErrors = 50
	maxEchoedText    = 200
)

func init() {
	base := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		if status == http.StatusInternalServerError && msg == "cannot read request body" {
			// The client's connection broke while sending: its failure,
			// not the server's, and the read error's text is internal.
			status, msg, errs = http.StatusBadRequest, "the request body could not be read to its end", nil
		}
		if len(errs) > maxProblemErrors {
			errs = append(errs[:maxProblemErrors:maxProblemErrors], &huma.ErrorDetail{
				Message: fmt.Sprintf("and %d more errors", len(errs)-maxProblemErrors)})
		}
		for _, e := range errs {
			var d *huma.ErrorDetail
			if errors.As(e, &d) {
				unpackBodyError(d)
				// huma reports a missing required property at its parent
				// ("body"); the contract wants the field named ("body.name").
				if prop, ok := missingProperty(d.Message); ok {
					d.Location += "." + prop
				}
				d.Value = echoable(d.Value)
			}
		}
		return base(status, msg, errs...)
	}
}

// echoable keeps a short scalar value for an error detail and drops any
// other: objects, arrays and long text are the client's own input.
func echoable(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int64, float64:
		return x
	case json.Number:
		if len(x) <= maxEchoedText {
			return x
		}
	case string:
		if len(x) <= maxEchoedText && utf8.ValidString(x) {
			return x
		}
	}
	return nil
}

// missingProperty extracts X from huma's "expected required property X to be present".
func missingProperty(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "expected required property ")
	if !ok {
		return "", false
	}
	prop, ok := strings.CutSuffix(rest, " to be present")
	return prop, ok && prop != ""
}

// Config returns the huma configuration: OpenAPI 3.1 at /openapi.json (and
// 3.0 at /openapi-3.0.json), bearer JWT security. The docs page is not
// huma's, which loads its UI from a CDN; New serves an embedded one.
func Config() huma.Config {
	cfg := huma.DefaultConfig("Dealcast API", Version)
	cfg.DocsPath = ""
	// The default hooks add a "$schema" link to every response body; the
	// contract's objects carry no such field.
	cfg.CreateHooks = nil
	// JSON text must be UTF-8 (RFC 8259); encoding/json would quietly turn
	// each bad byte into U+FFFD and store text the client never sent.
	strictJSON := huma.Format{Marshal: huma.DefaultJSONFormat.Marshal, Unmarshal: unmarshalUTF8}
	cfg.Formats = map[string]huma.Format{"application/json": strictJSON, "json": strictJSON}
	// A body of exactly 1 MiB is within the limit; huma refuses one that
	// fills its limit, so the limit is one byte more.
	cfg.OnAddOperation = append(cfg.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) {
		if op.MaxBodyBytes == 0 {
			op.MaxBodyBytes = MaxBody + 1
		}
	})
	cfg.Info.Description = "Sellers post deals; the buyers they authorise read them and receive a webhook for every change."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		bearerScheme: {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A JWT whose `sub` is the account ID and `role` is seller, buyer or operator."},
	}
	registerDomainSchemas(cfg.Components.Schemas)
	return cfg
}

const bearerScheme = "bearer"

// New returns the service's HTTP handler with every operation registered.
// Each request gets a server span (W3C trace context is read from the
// request), named after its operation.
func New(d Deps) (http.Handler, huma.API) {
	mux := http.NewServeMux()
	a := humago.New(mux, Config())
	a.UseMiddleware(observe(d.Meter))
	Register(a, d)
	reference.Register(mux)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if d.Ready != nil {
			if err := d.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if d.SpanlessRequests {
		return traceContext(mux), a
	}
	// otelhttp makes the server span and reads the caller's trace context;
	// its own request metrics would repeat dealcast.http.server.duration
	// (which knows the operation) at a cost on every request, so they go
	// nowhere.
	return otelhttp.NewHandler(mux, "http.request", otelhttp.WithMeterProvider(noop.NewMeterProvider())), a
}

// traceContext puts the caller's trace context (traceparent, baggage) in
// each request's context, as the server span's parent would be, without
// making the span.
func traceContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Register adds every operation to a.
func Register(a huma.API, d Deps) {
	h := &handlers{store: d.Store, log: d.Logger, delivery: d.Delivery, sealer: d.Sealer, allowPrivate: d.AllowPrivateWebhooks,
		invoiceTerms: invoiceTermsOr(d.InvoiceTerms)}
	if h.log == nil {
		h.log = slog.Default()
	}
	a.UseMiddleware(rateLimit(a, d.RateLimit, d.Verifier))
	a.UseMiddleware(authenticate(a, d.Verifier, d.Store))
	a.UseMiddleware(strictQuery(a))
	h.registerAccounts(a)
	h.registerGrants(a)
	h.registerDeals(a)
	h.registerEvents(a)
	h.registerEndpoints(a)
	h.registerDeliveries(a)
	h.registerInvoices(a)
	h.registerAuctions(a)
	describeProblemType(a.OpenAPI())
}

// describeProblemType moves the default of a problem's type into its
// description: responses leave type out when it is about:blank, and
// generators that read a default as "always present" would promise it.
func describeProblemType(o *huma.OpenAPI) {
	s := o.Components.Schemas.Map()["ErrorModel"]
	if s == nil {
		return
	}
	if p := s.Properties["type"]; p != nil && p.Default != nil {
		p.Description += fmt.Sprintf(" Omitted when %v.", p.Default)
		p.Default = nil
	}
}

type handlers struct {
	store        *store.Store
	log          *slog.Logger
	delivery     Delivery
	sealer       *webhook.Sealer
	allowPrivate bool
	invoiceTerms time.Duration
}

// dispatch hands a just-committed event to delivery. The outbox row is
// already durable, so this is only the fast path.
func (h *handlers) dispatch(ctx context.Context, ev *store.EventRef) {
	if ev != nil && h.delivery != nil {
		h.delivery.Dispatch(ctx, *ev)
	}
}

// fail maps an error from below to the problem the client sees. Anything
// unexpected is logged and answered 500 without its text, so internals
// never leak.
func (h *handlers) fail(ctx context.Context, err error) error {
	var verr *deal.ValidationError
	switch {
	case errors.As(err, &verr):
		details := make([]error, len(verr.Fields))
		for i, f := range verr.Fields {
			details[i] = &huma.ErrorDetail{Location: "body." + f.Field, Message: f.Message, Value: f.Value}
		}
		return huma.Error422UnprocessableEntity("validation failed", details...)
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound("not found")
	case errors.Is(err, store.ErrVersionMismatch):
		return huma.Error412PreconditionFailed("the deal has changed since the version in If-Match")
	case errors.Is(err, store.ErrIdempotencyConflict):
		return huma.Error409Conflict("this Idempotency-Key was used with a different request body")
	case errors.Is(err, store.ErrBadCursor):
		return huma.Error422UnprocessableEntity("validation failed",
			&huma.ErrorDetail{Location: "query.cursor", Message: "cursor is not one this service issued"})
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.log.WarnContext(ctx, "dependency unavailable", "err", err)
		return huma.Error503ServiceUnavailable("a dependency is unavailable; retry later")
	case errors.Is(err, context.Canceled):
		return huma.Error503ServiceUnavailable("request cancelled")
	}
	h.log.ErrorContext(ctx, "request failed", "err", err)
	return huma.Error500InternalServerError("internal error")
}

// Pagination is the query of every list operation.
type Pagination struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size."`
	Cursor string `query:"cursor" maxLength:"512" doc:"next_cursor of the previous page; empty for the first page."`
}

// ListBody is the body of every list response.
type ListBody[T any] struct {
	Data       []T     `json:"data" nullable:"false"`
	NextCursor *string `json:"next_cursor" doc:"Cursor of the next page; null on the last page."`
}

func listBody[T, U any](p store.Page[T], conv func(T) U) ListBody[U] {
	b := ListBody[U]{Data: make([]U, len(p.Items))}
	for i, it := range p.Items {
		b.Data[i] = conv(it)
	}
	if p.Next != "" {
		b.NextCursor = &p.Next
	}
	return b
}

// errorsOf documents the problems an operation can answer with.
func errorsOf(codes ...int) []int {
	return append([]int{http.StatusUnauthorized, http.StatusServiceUnavailable}, codes...)
}

func secured() []map[string][]string { return []map[string][]string{{bearerScheme: {}}} }
