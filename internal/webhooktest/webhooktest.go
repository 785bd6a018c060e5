// Package webhooktest is a buyer's side of Dealcast's webhooks for tests:
// a real HTTP receiver that records every request and answers as the test
// programs it, and the Standard Webhooks signature check a receiver makes.
//
// A test registers Receiver.URL as an endpoint, lets deliveries run, then
// inspects Receiver.Arrivals and checks each with Verify against the
// endpoint's secret.
package webhooktest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
)

// Arrival is one request as a Receiver got it.
type Arrival struct {
	// Method is the request method; deliveries are POSTs.
	Method string
	// Path is the request's URL path, which tells apart endpoints that
	// share one receiver.
	Path string
	// Header is a copy of the request headers.
	Header http.Header
	// Body is the whole request body.
	Body []byte
	// At is when the request had arrived, its body read.
	At time.Time
}

// ID is the arrival's webhook-id header: the event's id.
func (a Arrival) ID() string { return a.Header.Get("webhook-id") }

// Timestamp is the arrival's webhook-timestamp header (unix seconds).
func (a Arrival) Timestamp() string { return a.Header.Get("webhook-timestamp") }

// Signature is the arrival's webhook-signature header: space-separated
// "v1,<base64>" entries.
func (a Arrival) Signature() string { return a.Header.Get("webhook-signature") }

// Verify reports whether a is signed with secret, an endpoint secret in
// the "whsec_..." form the API returns: whether one of its
// webhook-signature entries is the HMAC-SHA256 of its webhook-id,
// webhook-timestamp and body under the secret's key. It checks the
// signature only, not how far the timestamp is from a's arrival. A secret
// that is not a valid endpoint secret verifies nothing.
func Verify(secret string, a Arrival) bool {
	key, err := webhook.DecodeSecret(secret)
	if err != nil {
		return false
	}
	return webhook.Verify(a.ID(), a.Timestamp(), a.Body, a.Signature(), key)
}

// Option programs a Receiver.
type Option func(*Receiver)

// WithStatus answers the n-th request (counting from 1) with status(n)
// and an empty body. Without it, and without WithHandler, every request
// is answered 200.
func WithStatus(status func(n int) int) Option {
	return func(r *Receiver) { r.status = status }
}

// Statuses is a status function for WithStatus: the n-th request gets
// codes[n-1], and requests after the last code get the last code again.
// Statuses(500) answers every request 500.
func Statuses(codes ...int) func(n int) int {
	if len(codes) == 0 {
		panic("webhooktest: Statuses needs at least one code")
	}
	return func(n int) int { return codes[min(max(n, 1), len(codes))-1] }
}

// WithHandler answers each request with h once the Receiver has recorded
// it (its body already read), for answers a status alone cannot give:
// headers, a body, a slow or missing answer. It overrides WithStatus.
func WithHandler(h http.HandlerFunc) Option {
	return func(r *Receiver) { r.handler = h }
}

// WithOnArrival calls f with each arrival once it is recorded and before
// it is answered, on the request's goroutine.
func WithOnArrival(f func(Arrival)) Option {
	return func(r *Receiver) { r.onArrival = f }
}

// Receiver is a webhook endpoint for tests: a real HTTP server on a
// loopback address that records every request it gets. It is safe for
// concurrent use.
type Receiver struct {
	srv       *httptest.Server
	status    func(n int) int
	handler   http.HandlerFunc
	onArrival func(Arrival)
	conns     atomic.Int32

	mu       sync.Mutex
	arrivals []Arrival
}

// NewReceiver starts a Receiver programmed by opts; it is closed when the
// test and its subtests end. Delivering to it needs a sender that allows
// private addresses.
func NewReceiver(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := &Receiver{}
	for _, o := range opts {
		o(r)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	a := Arrival{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()}
	r.mu.Lock()
	r.arrivals = append(r.arrivals, a)
	n := len(r.arrivals)
	r.mu.Unlock()
	if r.onArrival != nil {
		r.onArrival(a)
	}
	switch {
	case r.handler != nil:
		r.handler(w, req)
	case r.status != nil:
		w.WriteHeader(r.status(n))
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// URL is the receiver's base URL, "http://127.0.0.1:port"; any path
// below it reaches the receiver too.
func (r *Receiver) URL() string { return r.srv.URL }

// Arrivals returns the requests received so far, oldest first.
func (r *Receiver) Arrivals() []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrivals)
}

// Connections is the number of TCP connections the receiver has
// accepted, for checking that a sender reuses them or never connects.
func (r *Receiver) Connections() int { return int(r.conns.Load()) }

// Close shuts the receiver down before the test ends, for a test of an
// endpoint that stops answering. It waits for requests in progress.
func (r *Receiver) Close() { r.srv.Close() }
