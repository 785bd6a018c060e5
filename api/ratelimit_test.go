package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
)

// directAccount creates an account in the store, bypassing the API (whose
// operator budget a tiny rate limit would spend), and returns its id and token.
func (e *env) directAccount(role store.Role) (id, token string) {
	e.t.Helper()
	a, err := e.store.CreateAccount(context.Background(), role, "direct "+string(role))
	if err != nil {
		e.t.Fatal(err)
	}
	return a.ID, e.token(role, a.ID)
}

// from sends a request from a client address (RemoteAddr).
func (e *env) from(addr, method, path, token string) *response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = addr
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r := e.serve(req)
	if r.Status >= 500 {
		e.t.Fatalf("%s %s: server error %d: %s", method, path, r.Status, r.Body)
	}
	return r
}

// limited fails unless r is a 429 problem with a Retry-After of whole
// seconds in [1, max].
func (r *response) limited(maxWait int) {
	r.t.Helper()
	r.want(http.StatusTooManyRequests)
	if p := r.problem(); p.Status != http.StatusTooManyRequests || p.Detail == "" {
		r.t.Fatalf("problem %+v", p)
	}
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > maxWait {
		r.t.Fatalf("Retry-After %q, want whole seconds in [1, %d]", r.Header.Get("Retry-After"), maxWait)
	}
}

func TestRateLimitPerAccount(t *testing.T) {
	t.Parallel()
	// One request every 2 s sustained, 3 at once: the test never waits
	// long enough for a token to come back.
	e := setupDeps(t, func(d *api.Deps) { d.RateLimit = api.RateLimit{PerSecond: 0.5, Burst: 3} })
	aID, a := e.directAccount(store.RoleSeller)
	_, b := e.directAccount(store.RoleSeller)
	_, buyer := e.directAccount(store.RoleBuyer)

	for range 3 {
		e.do(http.MethodGet, "/v1/deals", a, nil).want(http.StatusOK)
	}
	e.do(http.MethodGet, "/v1/deals", a, nil).limited(2)
	// The refused request spent nothing, and the other routes share the budget.
	e.do(http.MethodPost, "/v1/deals", a, dealDraft(100)).limited(2)

	// Other accounts are unaffected, whatever their role, and even from
	// the same address (httptest's 192.0.2.1).
	for range 3 {
		e.do(http.MethodGet, "/v1/deals", b, nil).want(http.StatusOK)
		e.do(http.MethodGet, "/v1/deals", buyer, nil).want(http.StatusOK)
	}
	e.do(http.MethodGet, "/v1/deals", b, nil).limited(2)

	// Another token for the same account, its id spelled differently,
	// shares the account's bucket.
	again := e.token(store.RoleSeller, strings.ToUpper(aID))
	e.do(http.MethodGet, "/v1/deals", again, nil).limited(2)
}

func TestRateLimitWithoutValidTokenIsPerAddress(t *testing.T) {
	t.Parallel()
	e := setupDeps(t, func(d *api.Deps) { d.RateLimit = api.RateLimit{PerSecond: 0.5, Burst: 2} })
	victimID, victim := e.directAccount(store.RoleSeller)
	forged, err := auth.Mint("not-the-service-secret", store.RoleSeller, victimID, time.Hour, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Requests without a token, or with one that does not verify, are
	// counted against the client's address.
	e.from("198.51.100.7:4000", http.MethodGet, "/v1/deals", "").unauthorized()
	e.from("198.51.100.7:4001", http.MethodGet, "/v1/deals", forged).unauthorized()
	e.from("198.51.100.7:4002", http.MethodGet, "/v1/deals", forged).limited(4)
	e.from("198.51.100.7:4003", http.MethodGet, "/v1/deals", "").limited(4)
	// Another address has its own budget.
	e.from("198.51.100.8:4000", http.MethodGet, "/v1/deals", "").unauthorized()
	// The forged tokens named the victim but spent none of its budget.
	e.from("198.51.100.7:4004", http.MethodGet, "/v1/deals", victim).want(http.StatusOK)
	e.from("198.51.100.7:4005", http.MethodGet, "/v1/deals", victim).want(http.StatusOK)
	e.from("198.51.100.7:4006", http.MethodGet, "/v1/deals", victim).limited(4)

	// An IPv6 client is one /64, however many of its addresses it uses.
	e.from("[2001:db8:1:2::1]:4000", http.MethodGet, "/v1/deals", "").unauthorized()
	e.from("[2001:db8:1:2::ffff]:4000", http.MethodGet, "/v1/deals", "").unauthorized()
	e.from("[2001:db8:1:2:abcd::1]:4000", http.MethodGet, "/v1/deals", "").limited(4)
	e.from("[2001:db8:1:3::1]:4000", http.MethodGet, "/v1/deals", "").unauthorized()
}

func TestRateLimitOffByDefault(t *testing.T) {
	t.Parallel()
	e := setupDeps(t, func(*api.Deps) {})
	_, seller := e.directAccount(store.RoleSeller)
	for range 200 {
		e.do(http.MethodGet, "/v1/deals", seller, nil).want(http.StatusOK)
	}
}

func TestRateLimitLeavesProbesAlone(t *testing.T) {
	t.Parallel()
	e := setupDeps(t, func(d *api.Deps) { d.RateLimit = api.RateLimit{PerSecond: 0.5, Burst: 1} })
	for range 5 {
		for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
			e.do(http.MethodGet, p, "", nil).want(http.StatusOK)
		}
	}
}

// TestRateLimitIsDocumented checks every secured operation of the served
// document lists the 429 answer and its Retry-After header.
func TestRateLimitIsDocumented(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Security    []map[string]any `json:"security"`
			Responses   map[string]struct {
				Headers map[string]any `json:"headers"`
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(e.do(http.MethodGet, "/openapi.json", "", nil).want(http.StatusOK).Body, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ops := range doc.Paths {
		for _, op := range ops {
			if len(op.Security) == 0 {
				continue
			}
			n++
			r, ok := op.Responses["429"]
			if !ok || r.Headers["Retry-After"] == nil || r.Content["application/problem+json"] == nil {
				t.Errorf("%s: 429 with Retry-After and a problem body is not documented: %+v", op.OperationID, r)
			}
		}
	}
	if n == 0 {
		t.Fatal("no secured operations in the document")
	}
}
