package webhooktest_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// post sends a signed delivery to url the way Sender does and returns the
// answer's status.
// client is the tests' own: closing a Receiver closes the idle
// connections of http.DefaultTransport, which would break the requests of
// tests running in parallel.
var client = &http.Client{Transport: &http.Transport{}}

func post(t *testing.T, url, id string, body []byte, keys ...[]byte) int {
	t.Helper()
	ts := time.Now()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", webhook.Sign(id, ts, body, keys...))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func secret(t *testing.T) (string, []byte) {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := webhook.DecodeSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func TestReceiverRecordsAndVerifies(t *testing.T) {
	t.Parallel()
	var seen []string
	r := webhooktest.NewReceiver(t, webhooktest.WithOnArrival(func(a webhooktest.Arrival) { seen = append(seen, a.ID()) }))
	s1, k1 := secret(t)
	s2, k2 := secret(t)
	other, _ := secret(t)
	before := time.Now()
	if code := post(t, r.URL()+"/hooks/a", "evt_1", []byte(`{"id":"evt_1"}`), k1); code != http.StatusOK {
		t.Fatalf("status %d, want 200 by default", code)
	}
	if code := post(t, r.URL(), "evt_2", []byte(`{"id":"evt_2"}`), k1, k2); code != http.StatusOK {
		t.Fatalf("status %d, want 200 by default", code)
	}
	got := r.Arrivals()
	if len(got) != 2 || strings.Join(seen, ",") != "evt_1,evt_2" {
		t.Fatalf("arrivals %+v, seen %v", got, seen)
	}
	a := got[0]
	if a.Method != http.MethodPost || a.Path != "/hooks/a" || a.ID() != "evt_1" || string(a.Body) != `{"id":"evt_1"}` ||
		a.Header.Get("Content-Type") != "application/json" || a.At.Before(before) || a.At.After(time.Now()) {
		t.Fatalf("arrival %+v", a)
	}
	if _, err := strconv.ParseInt(a.Timestamp(), 10, 64); err != nil || !strings.HasPrefix(a.Signature(), "v1,") {
		t.Fatalf("timestamp %q, signature %q", a.Timestamp(), a.Signature())
	}
	for _, c := range []struct {
		name   string
		secret string
		a      webhooktest.Arrival
		want   bool
	}{
		{"its secret", s1, got[0], true},
		{"another secret", s2, got[0], false},
		{"the new secret during a rotation", s1, got[1], true},
		{"the old secret during a rotation", s2, got[1], true},
		{"an unrelated secret", other, got[1], false},
		{"not a secret", "whsec_x", got[0], false},
		{"the secret without its prefix", strings.TrimPrefix(s1, "whsec_"), got[0], false},
	} {
		if ok := webhooktest.Verify(c.secret, c.a); ok != c.want {
			t.Errorf("%s: Verify = %v, want %v", c.name, ok, c.want)
		}
	}
	// Any change to what was signed fails verification.
	for name, change := range map[string]func(*webhooktest.Arrival){
		"body":      func(a *webhooktest.Arrival) { a.Body = []byte(`{"id":"evt_X"}`) },
		"id":        func(a *webhooktest.Arrival) { a.Header.Set("webhook-id", "evt_X") },
		"timestamp": func(a *webhooktest.Arrival) { a.Header.Set("webhook-timestamp", "1") },
	} {
		a := got[0]
		a.Header = a.Header.Clone()
		change(&a)
		if webhooktest.Verify(s1, a) {
			t.Errorf("a changed %s still verifies", name)
		}
	}
	if n := r.Connections(); n != 1 {
		t.Errorf("%d connections for two sequential requests, want 1", n)
	}
}

func TestReceiverStatuses(t *testing.T) {
	t.Parallel()
	r := webhooktest.NewReceiver(t, webhooktest.WithStatus(webhooktest.Statuses(500, 503, 204)))
	_, k := secret(t)
	var got []int
	for i := range 5 {
		got = append(got, post(t, r.URL(), "evt_"+strconv.Itoa(i), []byte("{}"), k))
	}
	if want := []int{500, 503, 204, 204, 204}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := len(r.Arrivals()); n != 5 {
		t.Fatalf("%d arrivals, want 5", n)
	}
}

func TestReceiverHandler(t *testing.T) {
	t.Parallel()
	r := webhooktest.NewReceiver(t,
		webhooktest.WithStatus(webhooktest.Statuses(500)), // overridden
		webhooktest.WithHandler(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}))
	_, k := secret(t)
	if code := post(t, r.URL(), "evt_1", []byte("{}"), k); code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want the handler's 429", code)
	}
	if n := len(r.Arrivals()); n != 1 {
		t.Fatalf("%d arrivals, want 1", n)
	}
}
