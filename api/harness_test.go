package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

const testSecret = "test-secret-for-hs256-tokens-only"

// env is the service under test with its collaborators.
type env struct {
	t       testing.TB
	handler http.Handler
	store   *store.Store
}

// setup returns the full HTTP handler on the package's database. No
// webhook delivery runs (events stay in the outbox), and private webhook
// URLs are refused as in production.
func setup(t testing.TB) *env { return setupDeps(t, nil) }

// setupDeps is setup with Deps adjusted by change (a logger, a rate
// limit, a delivery) before the handler is built.
func setupDeps(t testing.TB, change func(*api.Deps)) *env {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Options{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(testDB.Pool)
	st.FeedSettle = 0
	key := make([]byte, webhook.KeySize)
	_, _ = rand.Read(key)
	sealer, err := webhook.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	d := api.Deps{Store: st, Verifier: v, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: st.Ping, Sealer: sealer}
	if change != nil {
		change(&d)
	}
	h, _ := api.New(d)
	return &env{t: t, handler: h, store: st}
}

// token mints a token for role and sub.
func (e *env) token(role store.Role, sub string) string {
	e.t.Helper()
	tok, err := auth.Mint(testSecret, role, sub, time.Hour, auth.MintOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) operator() string { return e.token(store.RoleOperator, "ops-1") }

// account creates a seller or buyer through the API and returns its id and token.
func (e *env) account(role store.Role) (id, token string) {
	e.t.Helper()
	path := "/v1/sellers"
	if role == store.RoleBuyer {
		path = "/v1/buyers"
	}
	r := e.do(http.MethodPost, path, e.operator(), map[string]any{"name": "acct " + string(role)})
	r.want(http.StatusCreated)
	var a api.Account
	r.decode(&a)
	return a.ID, e.token(role, a.ID)
}

func (e *env) seller() (id, token string) { return e.account(store.RoleSeller) }
func (e *env) buyer() (id, token string)  { return e.account(store.RoleBuyer) }

// grant authorises buyer to see seller's deals.
func (e *env) grant(sellerID, sellerToken, buyerID string) {
	e.t.Helper()
	e.do(http.MethodPut, "/v1/sellers/"+sellerID+"/buyers/"+buyerID, sellerToken, nil).want(http.StatusNoContent)
}

// response is a recorded answer.
type response struct {
	t      testing.TB
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request; body is JSON-encoded unless it is a string or []byte.
// headers are name, value pairs. Any 5xx fails the test: no input may
// cause one, and tests that want one use doRaw.
func (e *env) do(method, path, token string, body any, headers ...string) *response {
	e.t.Helper()
	r := e.doRaw(method, path, token, body, headers...)
	if r.Status >= 500 {
		e.t.Fatalf("%s %s: server error %d: %s", method, path, r.Status, r.Body)
	}
	return r
}

func (e *env) doRaw(method, path, token string, body any, headers ...string) *response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.serve(req)
}

// serve has the handler answer req and records the answer.
func (e *env) serve(req *http.Request) *response {
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return &response{t: e.t, Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// want fails unless the status is code.
func (r *response) want(code int) *response {
	r.t.Helper()
	if r.Status != code {
		r.t.Fatalf("status %d, want %d: %s", r.Status, code, r.Body)
	}
	return r
}

// decode unmarshals the body into v.
func (r *response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem is an RFC 9457 body.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string          `json:"message"`
		Location string          `json:"location"`
		Value    json.RawMessage `json:"value"`
	} `json:"errors"`
}

// problem decodes an error body and checks its content type.
func (r *response) problem() problem {
	r.t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		r.t.Fatalf("content type %q, want application/problem+json: %s", ct, r.Body)
	}
	var p problem
	r.decode(&p)
	return p
}

// locations lists the error locations of a problem.
func (p problem) locations() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	return out
}
