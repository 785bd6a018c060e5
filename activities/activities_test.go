package activities_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// sendTimeout is the per-attempt timeout of the tests' sender: short, so
// that a hanging receiver costs a second rather than the contract's 10 s.
const sendTimeout = 1 * time.Second

// fixture is one test's seller, with the activities under test and the
// store they write to.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	store  *store.Store
	sealer *webhook.Sealer
	acts   *activities.Activities
	seller string
	// background is the context activities run under; nil for none.
	background context.Context
}

func setup(t *testing.T) *fixture {
	t.Helper()
	var key [webhook.KeySize]byte
	_, _ = rand.Read(key[:])
	sealer, err := webhook.NewSealer(key[:])
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(testDB.Pool)
	sender := webhook.NewSender(webhook.ClientOptions{AllowPrivate: true, Timeout: sendTimeout})
	t.Cleanup(sender.CloseIdleConnections)
	f := &fixture{
		t:      t,
		ctx:    context.Background(),
		store:  st,
		sealer: sealer,
		acts:   &activities.Activities{Store: st, Sender: sender, Sealer: sealer, Concurrency: 8},
	}
	seller, err := st.CreateAccount(f.ctx, store.RoleSeller, "Seller "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	f.seller = seller.ID
	return f
}

// buyer creates a buyer, granted by the fixture's seller when granted.
func (f *fixture) buyer(granted bool) string {
	f.t.Helper()
	b, err := f.store.CreateAccount(f.ctx, store.RoleBuyer, "Buyer")
	if err != nil {
		f.t.Fatal(err)
	}
	if granted {
		if err := f.store.PutGrant(f.ctx, f.seller, b.ID); err != nil {
			f.t.Fatal(err)
		}
	}
	return b.ID
}

// newSecret returns a fresh secret and its sealed form.
func (f *fixture) newSecret() (secret string, sealed []byte) {
	f.t.Helper()
	secret, err := webhook.NewSecret()
	if err != nil {
		f.t.Fatal(err)
	}
	sealed, err = f.sealer.Seal(secret)
	if err != nil {
		f.t.Fatal(err)
	}
	return secret, sealed
}

// endpoint registers url for buyer, subscribed to types (both event types
// when none are given), and returns its ID and secret.
func (f *fixture) endpoint(buyer, url string, types ...deal.EventType) (id, secret string) {
	f.t.Helper()
	if len(types) == 0 {
		types = []deal.EventType{deal.EventCreated, deal.EventUpdated}
	}
	names := make([]string, len(types))
	for i, typ := range types {
		names[i] = string(typ)
	}
	secret, sealed := f.newSecret()
	e, err := f.store.CreateEndpoint(f.ctx, store.Endpoint{
		ID: uuid.NewString(), Owner: store.Viewer{Role: store.RoleBuyer, ID: buyer}, URL: url, EventTypes: names, Secret: sealed,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e.ID, secret
}

// updateEndpoint changes one of buyer's endpoints through the store.
func (f *fixture) updateEndpoint(buyer, id string, change func(*store.Endpoint)) {
	f.t.Helper()
	_, err := f.store.UpdateEndpoint(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: buyer}, id, func(e *store.Endpoint) error { change(e); return nil })
	if err != nil {
		f.t.Fatal(err)
	}
}

// event creates a deal of the fixture's seller and returns its
// deal.created event.
func (f *fixture) event() store.EventRef {
	f.t.Helper()
	d, err := deal.New(uuid.NewString(), f.seller, deal.Draft{
		Name: "Winter bundle", Currency: "gbp", TotalPrice: 10000,
		Items: []deal.Item{{ID: "sku-1", Name: "Bundle", Price: 10000}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	_, _, ev, err := f.store.CreateDeal(f.ctx, d, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if ev == nil || ev.Type != string(deal.EventCreated) {
		f.t.Fatalf("CreateDeal returned event %+v, want a deal.created event", ev)
	}
	return *ev
}

// deliver runs DeliverRound in Temporal's test activity environment.
func (f *fixture) deliver(in activities.RoundInput) (activities.RoundResult, error) {
	f.t.Helper()
	var suite testsuite.WorkflowTestSuite
	// Warnings and errors only: the SDK logs every heartbeat at debug.
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestActivityEnvironment()
	if f.background != nil {
		env.SetWorkerOptions(worker.Options{BackgroundActivityContext: f.background})
	}
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(f.acts.DeliverRound, in)
	if err != nil {
		return activities.RoundResult{}, err
	}
	var res activities.RoundResult
	if err := val.Get(&res); err != nil {
		f.t.Fatal(err)
	}
	return res, nil
}

func (f *fixture) mustDeliver(in activities.RoundInput) activities.RoundResult {
	f.t.Helper()
	res, err := f.deliver(in)
	if err != nil {
		f.t.Fatalf("DeliverRound(%+v): %v", in, err)
	}
	return res
}

// delivery returns the delivery of event to endpoint, as its buyer's
// delivery log shows it; the test fails unless there is exactly one.
func (f *fixture) delivery(buyer, event, endpoint string) store.Delivery {
	f.t.Helper()
	page, err := f.store.Deliveries(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: buyer}, store.DeliveryFilter{EventID: event, EndpointID: endpoint}, "", 100)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(page.Items) != 1 {
		f.t.Fatalf("deliveries of %s to %s: %d rows, want 1: %+v", event, endpoint, len(page.Items), page.Items)
	}
	return page.Items[0]
}

// deliveryRows counts the delivery rows of event, whoever they belong to.
func (f *fixture) deliveryRows(event string) int {
	f.t.Helper()
	var n int
	if err := testDB.Pool.QueryRow(f.ctx, `SELECT count(*) FROM webhook_deliveries WHERE event_id = $1`, event).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// payload returns the event exactly as stored, the bytes every attempt sends.
func (f *fixture) payload(event string) []byte {
	f.t.Helper()
	ev, err := f.store.Event(f.ctx, event)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev.Payload
}

// status answers the n-th request with codes[n-1], and later ones with
// the last code; status(code) answers every request with code.
func status(codes ...int) webhooktest.Option {
	return webhooktest.WithStatus(webhooktest.Statuses(codes...))
}

// hang answers nothing until the client gives up or the test ends.
func hang(t *testing.T) webhooktest.Option {
	release := make(chan struct{})
	// Cleanups run last-registered first: this one runs before the
	// server's Close, which waits for handlers to return.
	t.Cleanup(func() { close(release) })
	return webhooktest.WithHandler(func(_ http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-release:
		}
	})
}

// signatures returns the base64 MACs of a webhook-signature header.
func signatures(t *testing.T, header string) []string {
	t.Helper()
	var out []string
	for _, entry := range strings.Fields(header) {
		mac, ok := strings.CutPrefix(entry, "v1,")
		if !ok {
			t.Fatalf("signature entry %q does not start with v1,", entry)
		}
		out = append(out, mac)
	}
	return out
}

// signedBy tells whether one of a's signatures verifies with secret
// (webhooktest.Verify, which the webhook package's tests check against an
// independent reference).
func signedBy(t *testing.T, a webhooktest.Arrival, secret string) bool {
	t.Helper()
	signatures(t, a.Signature()) // fails the test on a malformed header
	return webhooktest.Verify(secret, a)
}

// checkRequest checks that a is the Standard Webhooks POST of event,
// carrying exactly the stored payload and signed by secret alone.
func checkRequest(t *testing.T, a webhooktest.Arrival, event string, payload []byte, secret string) {
	t.Helper()
	if a.Method != http.MethodPost {
		t.Errorf("method %s, want POST", a.Method)
	}
	if a.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q, want application/json", a.Header.Get("Content-Type"))
	}
	if a.ID() != event {
		t.Errorf("webhook-id %q, want the event id %q", a.ID(), event)
	}
	if string(a.Body) != string(payload) {
		t.Errorf("body %s, want the stored event %s", a.Body, payload)
	}
	var body struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(a.Body, &body); err != nil || body.ID != event || body.Type != string(deal.EventCreated) {
		t.Errorf("body is not the deal.created event %s (err %v): %s", event, err, a.Body)
	}
	ts, err := strconv.ParseInt(a.Timestamp(), 10, 64)
	if err != nil {
		t.Errorf("webhook-timestamp %q is not unix seconds", a.Timestamp())
	} else if skew := a.At.Sub(time.Unix(ts, 0)); skew < -time.Second || skew > 5*time.Second {
		t.Errorf("webhook-timestamp %s is %v away from the arrival at %s", a.Timestamp(), skew, a.At)
	}
	if n := len(signatures(t, a.Signature())); n != 1 {
		t.Errorf("%d signatures (%q), want 1", n, a.Signature())
	}
	if !signedBy(t, a, secret) {
		t.Errorf("signature %q does not verify with the endpoint's secret", a.Signature())
	}
}

// within fails unless got lies in [from, to].
func within(t *testing.T, what string, got *time.Time, from, to time.Time) {
	t.Helper()
	if got == nil {
		t.Errorf("%s is null, want between %s and %s", what, from, to)
		return
	}
	// The database keeps microseconds.
	if got.Before(from.Add(-time.Millisecond)) || got.After(to.Add(time.Millisecond)) {
		t.Errorf("%s = %s, want between %s and %s", what, got, from, to)
	}
}

func TestFirstRoundReachesEveryEntitledEndpointOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)

	// Two granted buyers, one with two endpoints: all three are entitled.
	granted1, granted2 := f.buyer(true), f.buyer(true)
	r1, r2, r3 := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	e1, s1 := f.endpoint(granted1, r1.URL())
	e2, s2 := f.endpoint(granted1, r2.URL()+"/second", deal.EventCreated)
	e3, s3 := f.endpoint(granted2, r3.URL())

	// Not entitled: a buyer never granted, a buyer whose grant was revoked,
	// a disabled endpoint, and an endpoint subscribed to the other type.
	ungrantedR, revokedR, disabledR, otherTypeR := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t), webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	f.endpoint(f.buyer(false), ungrantedR.URL())
	revoked := f.buyer(true)
	f.endpoint(revoked, revokedR.URL())
	if err := f.store.DeleteGrant(f.ctx, f.seller, revoked); err != nil {
		t.Fatal(err)
	}
	disabled, _ := f.endpoint(granted2, disabledR.URL())
	f.updateEndpoint(granted2, disabled, func(e *store.Endpoint) { e.Enabled = false })
	f.endpoint(granted2, otherTypeR.URL(), deal.EventUpdated)
	// A buyer granted by another seller only.
	other := setup(t)
	elsewhere := other.buyer(true)
	elsewhereR := webhooktest.NewReceiver(t)
	f.endpoint(elsewhere, elsewhereR.URL())

	ev := f.event()
	before := time.Now()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	after := time.Now()

	if want := (activities.RoundResult{Sent: 3, Succeeded: 3}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	payload := f.payload(ev.ID)
	for _, c := range []struct {
		name            string
		r               *webhooktest.Receiver
		buyer, endpoint string
		secret          string
	}{
		{"first endpoint of buyer 1", r1, granted1, e1, s1},
		{"second endpoint of buyer 1", r2, granted1, e2, s2},
		{"endpoint of buyer 2", r3, granted2, e3, s3},
	} {
		got := c.r.Arrivals()
		if len(got) != 1 {
			t.Errorf("%s got %d requests, want 1", c.name, len(got))
			continue
		}
		checkRequest(t, got[0], ev.ID, payload, c.secret)

		d := f.delivery(c.buyer, ev.ID, c.endpoint)
		if d.Status != store.DeliverySucceeded || d.Attempts != 1 || d.EventType != ev.Type || d.OwnerID != c.buyer {
			t.Errorf("%s: delivery %+v, want succeeded after 1 attempt", c.name, d)
		}
		if d.LastStatusCode == nil || *d.LastStatusCode != http.StatusOK {
			t.Errorf("%s: last_status_code %v, want 200", c.name, d.LastStatusCode)
		}
		if d.LastError != nil || d.NextAttemptAt != nil {
			t.Errorf("%s: last_error %v, next_attempt_at %v, want both null", c.name, d.LastError, d.NextAttemptAt)
		}
		within(t, c.name+" delivered_at", d.DeliveredAt, before, after)
	}
	for name, r := range map[string]*webhooktest.Receiver{
		"ungranted buyer": ungrantedR, "revoked buyer": revokedR, "disabled endpoint": disabledR,
		"endpoint subscribed to deal.updated only": otherTypeR, "buyer of another seller": elsewhereR,
	} {
		if n := len(r.Arrivals()); n != 0 {
			t.Errorf("%s got %d requests, want none", name, n)
		}
	}
	if n := f.deliveryRows(ev.ID); n != 3 {
		t.Errorf("%d delivery rows for the event, want 3 (one per entitled endpoint)", n)
	}

	// A repeated first round finds nobody left to reach.
	if res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100}); res != (activities.RoundResult{}) {
		t.Errorf("repeated round: %+v, want nothing sent", res)
	}
	for _, r := range []*webhooktest.Receiver{r1, r2, r3} {
		if n := len(r.Arrivals()); n != 1 {
			t.Errorf("after a repeated round a receiver has %d requests, want 1", n)
		}
	}
}

func TestRotatedSecretSignsWithBothUntilExpiry(t *testing.T) {
	t.Parallel()
	f := setup(t)
	buyer := f.buyer(true)
	r := webhooktest.NewReceiver(t)
	id, oldSecret := f.endpoint(buyer, r.URL())
	newSecret, sealed := f.newSecret()
	f.updateEndpoint(buyer, id, func(e *store.Endpoint) {
		expires := time.Now().Add(24 * time.Hour)
		e.PreviousSecret, e.Secret, e.PreviousSecretExpiresAt = e.Secret, sealed, &expires
	})

	during := f.event()
	f.mustDeliver(activities.RoundInput{EventID: during.ID, Limit: 100})
	got := r.Arrivals()
	if len(got) != 1 {
		t.Fatalf("got %d requests during the grace period, want 1", len(got))
	}
	sigs := signatures(t, got[0].Signature())
	if len(sigs) != 2 || sigs[0] == sigs[1] {
		t.Errorf("signature header %q, want two distinct signatures", got[0].Signature())
	}
	if !signedBy(t, got[0], newSecret) {
		t.Error("no signature verifies with the new secret")
	}
	if !signedBy(t, got[0], oldSecret) {
		t.Error("no signature verifies with the previous secret during its grace period")
	}

	if _, err := testDB.Pool.Exec(f.ctx,
		`UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 minute' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	expired := f.event()
	f.mustDeliver(activities.RoundInput{EventID: expired.ID, Limit: 100})
	got = r.Arrivals()
	if len(got) != 2 {
		t.Fatalf("got %d requests in all, want 2", len(got))
	}
	checkRequest(t, got[1], expired.ID, f.payload(expired.ID), newSecret)
	if signedBy(t, got[1], oldSecret) {
		t.Error("the expired previous secret still signs")
	}
}

// target is one buyer's endpoint and the receiver behind it.
type target struct {
	r               *webhooktest.Receiver
	buyer, endpoint string
}

// target makes a granted buyer with one endpoint whose receiver opts
// program (200 to every request without them).
func (f *fixture) target(opts ...webhooktest.Option) target {
	f.t.Helper()
	b := f.buyer(true)
	r := webhooktest.NewReceiver(f.t, opts...)
	id, _ := f.endpoint(b, r.URL())
	return target{r, b, id}
}

func statusOf(d store.Delivery) int {
	if d.LastStatusCode == nil {
		return 0
	}
	return *d.LastStatusCode
}

func errorOf(d store.Delivery) string {
	if d.LastError == nil {
		return ""
	}
	return *d.LastError
}

func retryAfter120(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "120")
	w.WriteHeader(http.StatusServiceUnavailable)
}

func TestFailureOutcomes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const nextIn = 30 * time.Second
	ok := f.target()
	serverError := f.target(webhooktest.WithHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "database is on fire")
	}))
	gone := f.target(status(http.StatusGone))
	hanging := f.target(hang(t))

	ev := f.event()
	before := time.Now()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: nextIn})
	after := time.Now()

	if want := (activities.RoundResult{Sent: 4, Succeeded: 1, Failed: 1, Pending: 2}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if elapsed := after.Sub(before); elapsed < sendTimeout {
		t.Errorf("round took %v, less than the %v the hanging receiver should have cost", elapsed, sendTimeout)
	}
	for _, tg := range []target{ok, serverError, gone, hanging} {
		if n := len(tg.r.Arrivals()); n != 1 {
			t.Errorf("a receiver got %d requests, want 1", n)
		}
	}

	d := f.delivery(ok.buyer, ev.ID, ok.endpoint)
	if d.Status != store.DeliverySucceeded || statusOf(d) != 200 || d.Attempts != 1 {
		t.Errorf("200: %+v, want succeeded", d)
	}

	d = f.delivery(serverError.buyer, ev.ID, serverError.endpoint)
	if d.Status != store.DeliveryPending || statusOf(d) != 500 || d.Attempts != 1 || d.DeliveredAt != nil {
		t.Errorf("500: status %s, code %d, attempts %d, delivered_at %v; want pending, 500, 1, null",
			d.Status, statusOf(d), d.Attempts, d.DeliveredAt)
	}
	if e := errorOf(d); !strings.Contains(e, "500") || !strings.Contains(e, "database is on fire") {
		t.Errorf("500: last_error %q, want the status and the start of the body", e)
	}
	within(t, "500 next_attempt_at", d.NextAttemptAt, before.Add(nextIn), after.Add(nextIn))

	d = f.delivery(gone.buyer, ev.ID, gone.endpoint)
	if d.Status != store.DeliveryFailed || statusOf(d) != 410 || d.Attempts != 1 || d.NextAttemptAt != nil {
		t.Errorf("410: status %s, code %d, attempts %d, next_attempt_at %v; want failed, 410, 1, null",
			d.Status, statusOf(d), d.Attempts, d.NextAttemptAt)
	}
	e, err := f.store.Endpoint(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: gone.buyer}, gone.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if e.Enabled || e.DisabledReason == nil || *e.DisabledReason == "" {
		t.Errorf("410: endpoint enabled %v, disabled_reason %v; want disabled with a reason", e.Enabled, e.DisabledReason)
	}

	d = f.delivery(hanging.buyer, ev.ID, hanging.endpoint)
	if d.Status != store.DeliveryPending || d.LastStatusCode != nil || d.Attempts != 1 {
		t.Errorf("hang: status %s, code %v, attempts %d; want pending, no code, 1", d.Status, d.LastStatusCode, d.Attempts)
	}
	if !strings.Contains(errorOf(d), "timeout") {
		t.Errorf("hang: last_error %q, want a timeout", errorOf(d))
	}
	within(t, "hang next_attempt_at", d.NextAttemptAt, before.Add(nextIn), after.Add(nextIn))

	// One 410 disables that endpoint alone.
	for _, tg := range []target{ok, serverError, hanging} {
		e, err := f.store.Endpoint(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: tg.buyer}, tg.endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Enabled {
			t.Errorf("endpoint %s was disabled, want only the 410 one", tg.endpoint)
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const nextIn = 30 * time.Second
	unavailable := f.target(webhooktest.WithHandler(retryAfter120))
	serverError := f.target(status(http.StatusInternalServerError))

	ev := f.event()
	before := time.Now()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: nextIn})
	after := time.Now()

	if want := (activities.RoundResult{Sent: 2, Pending: 2, RetryAfter: 2 * time.Minute}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	d := f.delivery(unavailable.buyer, ev.ID, unavailable.endpoint)
	if d.Status != store.DeliveryPending || statusOf(d) != 503 || d.Attempts != 1 {
		t.Errorf("503: status %s, code %d, attempts %d; want pending, 503, 1", d.Status, statusOf(d), d.Attempts)
	}
	// Retry-After (2 min) outweighs the workflow's own 30 s.
	within(t, "503 next_attempt_at", d.NextAttemptAt, before.Add(2*time.Minute), after.Add(2*time.Minute))
	// The workflow waits for the longest Retry-After of the round before
	// it retries anything, and next_attempt_at says so.
	d = f.delivery(serverError.buyer, ev.ID, serverError.endpoint)
	if d.Status != store.DeliveryPending {
		t.Errorf("500: status %s, want pending", d.Status)
	}
	within(t, "500 next_attempt_at beside a 503", d.NextAttemptAt, before.Add(2*time.Minute), after.Add(2*time.Minute))

	// A Retry-After shorter than the workflow's own wait changes nothing.
	g := setup(t)
	short := g.target(webhooktest.WithHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	ev = g.event()
	before = time.Now()
	res = g.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: nextIn})
	after = time.Now()
	if want := (activities.RoundResult{Sent: 1, Pending: 1, RetryAfter: 5 * time.Second}); res != want {
		t.Errorf("429: result %+v, want %+v", res, want)
	}
	d = g.delivery(short.buyer, ev.ID, short.endpoint)
	within(t, "429 next_attempt_at", d.NextAttemptAt, before.Add(nextIn), after.Add(nextIn))
}

func TestFinalRoundFailsWhatFails(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.buyer(true)
	r500 := webhooktest.NewReceiver(t, status(http.StatusInternalServerError))
	r503 := webhooktest.NewReceiver(t, webhooktest.WithHandler(retryAfter120))
	e500, _ := f.endpoint(b, r500.URL())
	e503, _ := f.endpoint(b, r503.URL())
	ev := f.event()

	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute, Final: true})
	if res.Sent != 2 || res.Failed != 2 || res.Pending != 0 || res.Succeeded != 0 || res.Next != "" {
		t.Errorf("result %+v, want 2 sent, 2 failed", res)
	}
	for _, id := range []string{e500, e503} {
		d := f.delivery(b, ev.ID, id)
		if d.Status != store.DeliveryFailed || d.NextAttemptAt != nil || d.Attempts != 1 || d.LastError == nil {
			t.Errorf("delivery %+v, want failed after 1 attempt with an error and no next attempt", d)
		}
	}
	if n := len(r500.Arrivals()) + len(r503.Arrivals()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestRetryRoundAttemptsOnlyPendingStillEntitled(t *testing.T) {
	t.Parallel()
	f := setup(t)
	add := f.target
	recovers := add(status(500, 200))
	stillDown := add(status(http.StatusBadGateway))
	revoked := add(status(500))
	deleted := add(status(500))
	disabled := add(status(500))
	unsubscribed := add(status(500))
	delivered := add()

	ev := f.event()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	if want := (activities.RoundResult{Sent: 7, Succeeded: 1, Pending: 6}); res != want {
		t.Fatalf("first round %+v, want %+v", res, want)
	}

	if err := f.store.DeleteGrant(f.ctx, f.seller, revoked.buyer); err != nil {
		t.Fatal(err)
	}
	if err := f.store.DeleteEndpoint(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: deleted.buyer}, deleted.endpoint); err != nil {
		t.Fatal(err)
	}
	f.updateEndpoint(disabled.buyer, disabled.endpoint, func(e *store.Endpoint) { e.Enabled = false })
	f.updateEndpoint(unsubscribed.buyer, unsubscribed.endpoint, func(e *store.Endpoint) {
		e.EventTypes = []string{string(deal.EventUpdated)}
	})
	// A buyer granted after the first round is not one of this event's
	// pending deliveries: a retry round does not reach it.
	late := add()

	res = f.mustDeliver(activities.RoundInput{EventID: ev.ID, Retry: true, Limit: 100, NextAttemptIn: 5 * time.Minute})
	if want := (activities.RoundResult{Sent: 2, Succeeded: 1, Failed: 4, Pending: 1}); res != want {
		t.Errorf("retry round %+v, want %+v", res, want)
	}

	requests := map[string]struct {
		tg   target
		want int
	}{
		"recovering": {recovers, 2}, "still down": {stillDown, 2}, "revoked": {revoked, 1}, "deleted": {deleted, 1},
		"disabled": {disabled, 1}, "unsubscribed": {unsubscribed, 1}, "already delivered": {delivered, 1}, "granted late": {late, 0},
	}
	for name, c := range requests {
		if n := len(c.tg.r.Arrivals()); n != c.want {
			t.Errorf("%s receiver got %d requests, want %d", name, n, c.want)
		}
	}

	d := f.delivery(recovers.buyer, ev.ID, recovers.endpoint)
	if d.Status != store.DeliverySucceeded || d.Attempts != 2 || d.LastStatusCode == nil || *d.LastStatusCode != 200 ||
		d.LastError != nil || d.DeliveredAt == nil || d.NextAttemptAt != nil {
		t.Errorf("recovering: %+v, want succeeded at the 2nd attempt", d)
	}
	d = f.delivery(stillDown.buyer, ev.ID, stillDown.endpoint)
	if d.Status != store.DeliveryPending || d.Attempts != 2 || d.LastStatusCode == nil || *d.LastStatusCode != 502 {
		t.Errorf("still down: %+v, want pending after 2 attempts", d)
	}
	d = f.delivery(delivered.buyer, ev.ID, delivered.endpoint)
	if d.Status != store.DeliverySucceeded || d.Attempts != 1 {
		t.Errorf("already delivered: %+v, want untouched", d)
	}

	for name, c := range map[string]struct {
		tg     target
		reason string
	}{
		"revoked":      {revoked, "not attempted: grant revoked"},
		"deleted":      {deleted, "not attempted: endpoint deleted"},
		"disabled":     {disabled, "not attempted: endpoint disabled"},
		"unsubscribed": {unsubscribed, "not attempted: endpoint unsubscribed from deal.created"},
	} {
		d := f.delivery(c.tg.buyer, ev.ID, c.tg.endpoint)
		if d.Status != store.DeliveryFailed || d.LastError == nil || *d.LastError != c.reason {
			t.Errorf("%s: status %s, last_error %v; want failed, %q", name, d.Status, d.LastError, c.reason)
		}
		if d.Attempts != 1 {
			t.Errorf("%s: attempts %d, want 1 (the cancellation is no attempt)", name, d.Attempts)
		}
		if d.NextAttemptAt != nil {
			t.Errorf("%s: next_attempt_at %v, want null", name, d.NextAttemptAt)
		}
	}
	if n := f.deliveryRows(ev.ID); n != 7 {
		t.Errorf("%d delivery rows, want 7", n)
	}

	// The cancelled deliveries are not pending any more: a further retry
	// round attempts the one still down, and nothing else.
	res = f.mustDeliver(activities.RoundInput{EventID: ev.ID, Retry: true, Limit: 100, NextAttemptIn: time.Minute})
	if want := (activities.RoundResult{Sent: 1, Pending: 1}); res != want {
		t.Errorf("third round %+v, want %+v", res, want)
	}
	if d := f.delivery(stillDown.buyer, ev.ID, stillDown.endpoint); d.Attempts != 3 {
		t.Errorf("still down: attempts %d after three rounds, want 3", d.Attempts)
	}
}

// recipient is an endpoint and the cursor of a page ending with it.
type recipient struct{ endpoint, cursor string }

// recipients makes n granted buyers with one counting endpoint each and
// returns them in the order the store pages them (by buyer), with the
// request count of each endpoint.
func (f *fixture) recipients(n int) ([]recipient, map[string]*atomic.Int32) {
	f.t.Helper()
	list := make([]recipient, 0, n)
	hits := map[string]*atomic.Int32{}
	for range n {
		var c atomic.Int32
		r := webhooktest.NewReceiver(f.t, webhooktest.WithHandler(func(w http.ResponseWriter, _ *http.Request) { c.Add(1) }))
		b := f.buyer(true)
		id, _ := f.endpoint(b, r.URL())
		list = append(list, recipient{endpoint: id, cursor: b + "/" + id})
		hits[id] = &c
	}
	// PostgreSQL orders UUIDs bytewise, as their lowercase text sorts.
	slices.SortFunc(list, func(a, b recipient) int { return strings.Compare(a.cursor, b.cursor) })
	return list, hits
}

func checkOnce(t *testing.T, hits map[string]*atomic.Int32) {
	t.Helper()
	for id, c := range hits {
		if n := c.Load(); n != 1 {
			t.Errorf("endpoint %s got %d requests, want 1", id, n)
		}
	}
}

func TestPagesCoverEveryRecipientOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ids, hits := f.recipients(5)
	ev := f.event()

	var pages []activities.RoundResult
	after := ""
	for range 10 {
		res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, After: after, Limit: 2, NextAttemptIn: time.Minute})
		pages = append(pages, res)
		if res.Next == "" {
			break
		}
		after = res.Next
	}
	want := []activities.RoundResult{
		{Sent: 2, Succeeded: 2, Next: ids[1].cursor},
		{Sent: 2, Succeeded: 2, Next: ids[3].cursor},
		{Sent: 1, Succeeded: 1},
	}
	if !slices.Equal(pages, want) {
		t.Errorf("pages %+v, want %+v", pages, want)
	}
	checkOnce(t, hits)
	if n := f.deliveryRows(ev.ID); n != 5 {
		t.Errorf("%d delivery rows, want 5", n)
	}
}

// PlanPages cuts the recipients after a first page into runs of Limit;
// pages bounded by the cuts, sent in any order, reach every recipient once.
func TestPlannedRunsCoverEveryRecipientOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ids, hits := f.recipients(7)
	ev := f.event()
	first := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 2, NextAttemptIn: time.Minute})
	cuts, err := f.acts.PlanPages(f.ctx, activities.PlanInput{EventID: ev.ID, After: first.Next, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ids[3].cursor, ids[5].cursor}; !slices.Equal(cuts, want) {
		t.Fatalf("cuts %v, want %v", cuts, want)
	}
	runs := []activities.RoundInput{
		{After: cuts[1]},
		{After: cuts[0], Upto: cuts[1]},
		{After: first.Next, Upto: cuts[0]},
	}
	for _, run := range runs {
		run.EventID, run.Limit, run.NextAttemptIn = ev.ID, 2, time.Minute
		if res := f.mustDeliver(run); res.Next != "" && res.Next != run.Upto {
			t.Errorf("run %+v went on past its end: %+v", run, res)
		}
	}
	checkOnce(t, hits)
	if n := f.deliveryRows(ev.ID); n != 7 {
		t.Errorf("%d delivery rows, want 7", n)
	}
	if none, err := f.acts.PlanPages(f.ctx, activities.PlanInput{EventID: "evt_" + uuid.NewString(), Limit: 2}); err != nil || none != nil {
		t.Errorf("an event that does not exist: cuts %v, %v", none, err)
	}
}

func TestRetriedPageDoesNotResend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ids, hits := f.recipients(5)
	ev := f.event()

	first := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 2, NextAttemptIn: time.Minute})
	if first.Sent != 2 || first.Next != ids[1].cursor {
		t.Fatalf("first page %+v, want 2 sent, next %s", first, ids[1].cursor)
	}
	// Temporal runs the first page again, as after a lost completion: the
	// endpoints it already reached are skipped and the page moves on.
	again := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 2, NextAttemptIn: time.Minute})
	if hits[ids[0].endpoint].Load() != 1 || hits[ids[1].endpoint].Load() != 1 {
		t.Errorf("the retried page resent to endpoints already reached: %d and %d requests", hits[ids[0].endpoint].Load(), hits[ids[1].endpoint].Load())
	}
	after := again.Next
	for i := 0; after != "" && i < 10; i++ {
		res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, After: after, Limit: 2, NextAttemptIn: time.Minute})
		after = res.Next
	}
	checkOnce(t, hits)
	for _, r := range ids {
		id := r.endpoint
		var attempts int
		if err := testDB.Pool.QueryRow(f.ctx, `SELECT attempts FROM webhook_deliveries WHERE event_id = $1 AND endpoint_id = $2`,
			ev.ID, id).Scan(&attempts); err != nil {
			t.Fatalf("delivery to %s: %v", id, err)
		}
		if attempts != 1 {
			t.Errorf("delivery to %s: %d attempts, want 1", id, attempts)
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.acts.Concurrency = 2
	const (
		receivers = 6
		delay     = 200 * time.Millisecond
	)
	var inFlight, peak atomic.Int32
	slow := func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(delay)
		inFlight.Add(-1)
	}
	for range receivers {
		f.endpoint(f.buyer(true), webhooktest.NewReceiver(t, webhooktest.WithHandler(slow)).URL())
	}
	ev := f.event()

	start := time.Now()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	elapsed := time.Since(start)

	if res.Sent != receivers || res.Succeeded != receivers {
		t.Errorf("result %+v, want %d sent and succeeded", res, receivers)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d requests were in flight at once, want 2", p)
	}
	// Three waves of two: not less, and not much more.
	if waves := receivers / 2 * delay; elapsed < waves || elapsed > waves+time.Second {
		t.Errorf("round took %v, want about %v", elapsed, waves)
	}
}

func TestUnreadableSecretHoldsThatEndpointOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.buyer(true)
	good, bad := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	goodID, goodSecret := f.endpoint(b, good.URL())
	badID, _ := f.endpoint(b, bad.URL())
	// Sealed under a key the activities do not hold.
	var key [webhook.KeySize]byte
	_, _ = rand.Read(key[:])
	foreign, err := webhook.NewSealer(key[:])
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := webhook.NewSecret()
	sealed, _ := foreign.Seal(secret)
	f.updateEndpoint(b, badID, func(e *store.Endpoint) { e.Secret = sealed })

	ev := f.event()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	// An unreadable secret is a configuration error (most likely the
	// worker's sealing key): that delivery stays pending for the schedule's
	// next round, unattempted.
	if res.Succeeded != 1 || res.Failed != 0 || res.Pending != 1 || res.Sent != 1 {
		t.Errorf("result %+v, want 1 succeeded and 1 pending", res)
	}
	if len(bad.Arrivals()) != 0 {
		t.Error("a request went out without a usable secret")
	}
	if got := good.Arrivals(); len(got) != 1 {
		t.Errorf("the other endpoint got %d requests, want 1", len(got))
	} else {
		checkRequest(t, got[0], ev.ID, f.payload(ev.ID), goodSecret)
	}
	d := f.delivery(b, ev.ID, badID)
	if d.Status != store.DeliveryPending || d.Attempts != 0 || d.NextAttemptAt == nil || d.LastError == nil || !strings.Contains(*d.LastError, "secret") {
		t.Errorf("delivery %+v, want pending, unattempted, naming the secret", d)
	}
	if d.LastError != nil && strings.Contains(*d.LastError, "whsec_") {
		t.Errorf("last_error %q shows a secret", *d.LastError)
	}
	if d := f.delivery(b, ev.ID, goodID); d.Status != store.DeliverySucceeded {
		t.Errorf("other endpoint: %+v, want succeeded", d)
	}
}

func TestEventNotFoundIsNotRetryable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, id := range []string{"evt_doesnotexist", ""} {
		_, err := f.deliver(activities.RoundInput{EventID: id, Limit: 100})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			t.Fatalf("event %q: error %v (%T), want an application error", id, err, err)
		}
		if !appErr.NonRetryable() || appErr.Type() != "EventNotFound" {
			t.Errorf("event %q: error type %q, non-retryable %v; want EventNotFound, non-retryable", id, appErr.Type(), appErr.NonRetryable())
		}
	}
}

func TestRequeuedDeliveryKeepsFirstDeliveredAt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tg := f.target()
	ev := f.event()
	f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	first := f.delivery(tg.buyer, ev.ID, tg.endpoint)
	if first.DeliveredAt == nil {
		t.Fatalf("delivery %+v, want delivered", first)
	}

	// The buyer asks for it again (POST /v1/webhook-deliveries/{id}/retry).
	if _, err := f.store.RequeueDelivery(f.ctx, store.Viewer{Role: store.RoleBuyer, ID: tg.buyer}, first.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Retry: true, Limit: 100, Final: true})
	if want := (activities.RoundResult{Sent: 1, Succeeded: 1}); res != want {
		t.Errorf("retry round %+v, want %+v", res, want)
	}
	if n := len(tg.r.Arrivals()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
	again := f.delivery(tg.buyer, ev.ID, tg.endpoint)
	if again.Status != store.DeliverySucceeded || again.Attempts != 2 || again.NextAttemptAt != nil {
		t.Errorf("delivery %+v, want succeeded after 2 attempts", again)
	}
	if again.DeliveredAt == nil || !again.DeliveredAt.Equal(*first.DeliveredAt) {
		t.Errorf("delivered_at %v after the second success, want the first %v", again.DeliveredAt, first.DeliveredAt)
	}
}

func TestForbiddenAddressFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The operator has since turned private addresses off: the check made
	// again at delivery time refuses the loopback receiver.
	strict := webhook.NewSender(webhook.ClientOptions{Timeout: sendTimeout})
	t.Cleanup(strict.CloseIdleConnections)
	f.acts.Sender = strict
	b := f.buyer(true)
	plain := webhooktest.NewReceiver(t)
	plainID, _ := f.endpoint(b, plain.URL())
	var tlsHits atomic.Int32
	tls := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { tlsHits.Add(1) }))
	t.Cleanup(tls.Close)
	tlsID, _ := f.endpoint(b, tls.URL)

	ev := f.event()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	if res.Failed != 2 || res.Pending != 0 || res.Succeeded != 0 {
		t.Errorf("result %+v, want 2 failed", res)
	}
	if n := len(plain.Arrivals()) + int(tlsHits.Load()); n != 0 {
		t.Errorf("%d requests reached forbidden addresses, want none", n)
	}
	for name, c := range map[string]struct{ id, reason string }{
		"http URL":           {plainID, "https"},
		"loopback https URL": {tlsID, "public"},
	} {
		d := f.delivery(b, ev.ID, c.id)
		if d.Status != store.DeliveryFailed || d.NextAttemptAt != nil || !strings.Contains(errorOf(d), c.reason) {
			t.Errorf("%s: status %s, next_attempt_at %v, last_error %q; want failed for good, naming %q",
				name, d.Status, d.NextAttemptAt, errorOf(d), c.reason)
		}
	}
}

func TestMalformedSecretHoldsThatEndpointOnly(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.buyer(true)
	r := webhooktest.NewReceiver(t)
	id, _ := f.endpoint(b, r.URL())
	sealed, err := f.sealer.Seal("whsec_dG9vIHNob3J0")
	if err != nil {
		t.Fatal(err)
	}
	f.updateEndpoint(b, id, func(e *store.Endpoint) { e.Secret = sealed })
	ev := f.event()
	res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 100, NextAttemptIn: time.Minute})
	if res.Failed != 0 || res.Pending != 1 {
		t.Errorf("result %+v, want 1 pending", res)
	}
	if len(r.Arrivals()) != 0 {
		t.Error("a request went out with an unusable secret")
	}
	if d := f.delivery(b, ev.ID, id); d.Status != store.DeliveryPending || !strings.Contains(errorOf(d), "secret") {
		t.Errorf("delivery %+v, want pending naming the secret", d)
	}
	// The last round of the schedule gives up on it.
	res = f.mustDeliver(activities.RoundInput{EventID: ev.ID, Retry: true, Limit: 100, NextAttemptIn: time.Minute, Final: true})
	if res.Failed != 1 {
		t.Errorf("final round: %+v, want 1 failed", res)
	}
}

// TestRetryAfterShownOnEveryPageOfTheRound documents a bug. DeliverRound
// moves next_attempt_at of a page's pending deliveries to the longest
// Retry-After "of the round", because the workflow waits that long
// before retrying any of them (workflows.DeliverEvent: delay :=
// max(RetryDelay, wait), wait being the maximum over all pages). But
// DeliverRound sees one page only: a delivery on a page without a
// Retry-After shows now+NextAttemptIn although the workflow will wait for a
// Retry-After another page of the same round received, so buyers see a next
// attempt time that passes with no attempt.
func TestRetryAfterShownOnEveryPageOfTheRound(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const nextIn = 30 * time.Second
	// Three receivers whose answers are chosen once the page order, which
	// is endpoint ID order, is known.
	var asks [3]atomic.Bool
	ids := make([]string, 3)
	byID := map[string]int{}
	b := f.buyer(true)
	for i := range 3 {
		r := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, req *http.Request) {
			if asks[i].Load() {
				retryAfter120(w, req)
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
		}))
		ids[i], _ = f.endpoint(b, r.URL())
		byID[ids[i]] = i
	}
	sorted := slices.Sorted(slices.Values(ids))
	// Pages of one: a 500, then a 503 with Retry-After: 120, then a 500.
	asks[byID[sorted[1]]].Store(true)

	ev := f.event()
	before := time.Now()
	var wait time.Duration
	after := ""
	for range 5 {
		res := f.mustDeliver(activities.RoundInput{EventID: ev.ID, After: after, Limit: 1, NextAttemptIn: nextIn})
		wait = max(wait, res.RetryAfter)
		if after = res.Next; after == "" {
			break
		}
	}
	if wait != 2*time.Minute {
		t.Fatalf("the round's longest Retry-After is %v, want 2m", wait)
	}
	// The workflow now waits max(NextAttemptIn, wait) = 2 min before its
	// next round, and says so on the round's pending deliveries (pages
	// before the 503 could not know), as workflows.DeliverEvent does.
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	if _, err := env.ExecuteActivity(f.acts.PostponeRetries, activities.PostponeInput{EventID: ev.ID, Until: before.Add(wait)}); err != nil {
		t.Fatal(err)
	}
	// Every pending delivery of the round now shows the real wait.
	for page, id := range sorted {
		d := f.delivery(b, ev.ID, id)
		if d.Status != store.DeliveryPending || d.NextAttemptAt == nil {
			t.Fatalf("page %d: %+v, want pending", page+1, d)
		}
		if d.NextAttemptAt.Before(before.Add(wait).Truncate(time.Microsecond)) {
			t.Errorf("page %d (HTTP %d): next_attempt_at is %v from the round's start, but the workflow waits %v",
				page+1, statusOf(d), d.NextAttemptAt.Sub(before).Round(time.Second), wait)
		}
	}
}

// TestAttemptsCarryTheTrace: the receiver's traceparent is in the trace the
// activity runs in, named by a span of its own per attempt, or, with
// SpanlessAttempts, by the activity's span. It sets the process-wide
// OpenTelemetry providers, so it does not run in parallel.
func TestAttemptsCarryTheTrace(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	// As a process that exports nothing: spans are made but not sampled.
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample()))))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Remote:  true,
	})
	for _, spanless := range []bool{false, true} {
		t.Run(fmt.Sprintf("spanless=%v", spanless), func(t *testing.T) {
			f := setup(t)
			f.acts.SpanlessAttempts = spanless
			f.background = trace.ContextWithRemoteSpanContext(context.Background(), parent)
			r := webhooktest.NewReceiver(t)
			f.endpoint(f.buyer(true), r.URL())
			ev := f.event()
			f.mustDeliver(activities.RoundInput{EventID: ev.ID, Limit: 10})

			got := r.Arrivals()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(got))
			}
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
				propagation.HeaderCarrier(http.Header{"Traceparent": {got[0].Header.Get("traceparent")}})))
			if sc.TraceID() != parent.TraceID() {
				t.Fatalf("traceparent %q is not in the activity's trace %s", got[0].Header.Get("traceparent"), parent.TraceID())
			}
			if ownSpan := sc.SpanID() != parent.SpanID(); ownSpan == spanless {
				t.Errorf("traceparent %q: span of its own = %v, want %v", got[0].Header.Get("traceparent"), ownSpan, !spanless)
			}
		})
	}
}
