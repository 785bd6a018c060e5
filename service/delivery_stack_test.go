package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/internal/webhooktest"
	"github.com/dealcast/dealcast/service"
)

const jwtSecret = "delivery-test-secret"

// stack is the API, a dispatcher and a worker on the package's database
// and Temporal server, isolated by task queue.
type stack struct {
	t          testing.TB
	handler    http.Handler
	store      *store.Store
	dispatcher *delivery.Dispatcher
	taskQueue  string
	acts       *activities.Activities
	worker     worker.Worker
	client     client.Client
	// deps built the handler; a test may change them and call rebuild.
	deps api.Deps
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newStack(t testing.TB) *stack { return newStackWith(t, temporal.GetDefaultClient(), nil) }

// newStackWith builds a stack on client c, serving metrics with metrics.
func newStackWith(t testing.TB, c client.Client, metrics http.Handler) *stack {
	return newStackOn(t, c, metrics, testDB.Pool)
}

// newStackOn builds a stack on client c and the database of pool.
func newStackOn(t testing.TB, c client.Client, metrics http.Handler, pool *pgxpool.Pool) *stack {
	t.Helper()
	var key [32]byte
	_, _ = rand.Read(key[:])
	sealer, err := webhook.NewSealer(key[:])
	if err != nil {
		t.Fatal(err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	s := &stack{t: t, store: store.New(pool), taskQueue: "test-" + hex.EncodeToString(suffix[:])}
	s.store.FeedSettle = 0
	s.client = c
	s.dispatcher = delivery.NewDispatcher(c, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue, Eager: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.dispatcher.Run(ctx, 4); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s.acts = &activities.Activities{
		Store:       s.store,
		Sender:      webhook.NewSender(webhook.ClientOptions{AllowPrivate: true, Timeout: 2 * time.Second}),
		Sealer:      sealer,
		Concurrency: 16,
		Delivery:    s.dispatcher,
	}
	s.startWorker()
	v, err := auth.NewVerifier(context.Background(), auth.Options{Secret: jwtSecret})
	if err != nil {
		t.Fatal(err)
	}
	s.deps = api.Deps{Store: s.store, Verifier: v, Logger: quietLogger(), Delivery: s.dispatcher,
		Sealer: sealer, AllowPrivateWebhooks: true, Metrics: metrics}
	s.rebuild()
	return s
}

// rebuild makes the API handler again from s.deps.
func (s *stack) rebuild() { s.handler, _ = api.New(s.deps) }

func (s *stack) startWorker() {
	s.t.Helper()
	s.worker = service.NewWorker(s.client, s.taskQueue, s.acts)
	if err := s.worker.Start(); err != nil {
		s.t.Fatal(err)
	}
	w := s.worker
	s.t.Cleanup(w.Stop)
}

// call sends a request to the API and decodes a JSON answer into out;
// headers are name, value pairs.
func (s *stack) call(method, path, token string, body any, want int, out any, headers ...string) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, rec.Code, want, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *stack) token(role store.Role, sub string) string {
	tok, err := auth.Mint(jwtSecret, role, sub, time.Hour, auth.MintOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// account creates a seller or buyer and returns its ID and token.
func (s *stack) account(role store.Role) (string, string) {
	var a struct{ ID string }
	s.call(http.MethodPost, "/v1/"+string(role)+"s", s.token(store.RoleOperator, "ops"), map[string]string{"name": string(role)}, http.StatusCreated, &a)
	return a.ID, s.token(role, a.ID)
}

func (s *stack) grant(seller, sellerToken, buyer string) {
	s.call(http.MethodPut, "/v1/sellers/"+seller+"/buyers/"+buyer, sellerToken, nil, http.StatusNoContent, nil)
}

func (s *stack) revoke(seller, sellerToken, buyer string) {
	s.call(http.MethodDelete, "/v1/sellers/"+seller+"/buyers/"+buyer, sellerToken, nil, http.StatusNoContent, nil)
}

// endpoint registers url for the buyer and returns its ID and secret.
func (s *stack) endpoint(buyerToken, url string) (id, secret string) {
	var e struct{ ID, Secret string }
	s.call(http.MethodPost, "/v1/webhook-endpoints", buyerToken, map[string]any{"url": url}, http.StatusCreated, &e)
	return e.ID, e.Secret
}

type dealBody struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

func (s *stack) createDeal(sellerToken string, price int64) dealBody {
	var d dealBody
	s.call(http.MethodPost, "/v1/deals", sellerToken, map[string]any{
		"name": "Deal", "currency": "gbp", "total_price": price,
		"items": []map[string]any{{"id": "i1", "name": "Item", "price": price}},
	}, http.StatusCreated, &d)
	return d
}

func (s *stack) setPrice(sellerToken, id string, price int64) dealBody {
	var d dealBody
	s.call(http.MethodPatch, "/v1/deals/"+id, sellerToken, map[string]any{
		"total_price": price, "items": []map[string]any{{"id": "i1", "name": "Item", "price": price}},
	}, http.StatusOK, &d)
	return d
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventOf decodes a delivered body.
type deliveredEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Deal struct {
			ID         string `json:"id"`
			TotalPrice int64  `json:"total_price"`
			Version    int64  `json:"version"`
		} `json:"deal"`
		Previous map[string]any `json:"previous"`
	} `json:"data"`
}

func decodeEvent(t testing.TB, a webhooktest.Arrival) deliveredEvent {
	t.Helper()
	var ev deliveredEvent
	if err := json.Unmarshal(a.Body, &ev); err != nil {
		t.Fatalf("delivered body is not an event: %v: %s", err, a.Body)
	}
	return ev
}

// swapDelivery rebuilds the API with another dispatcher.
func (s *stack) swapDelivery(d *delivery.Dispatcher) {
	v, err := auth.NewVerifier(context.Background(), auth.Options{Secret: jwtSecret})
	if err != nil {
		s.t.Fatal(err)
	}
	s.handler, _ = api.New(api.Deps{Store: s.store, Verifier: v, Logger: quietLogger(), Delivery: d,
		Sealer: s.acts.Sealer, AllowPrivateWebhooks: true})
}
