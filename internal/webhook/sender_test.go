package webhook_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// devSender is a sender as in local development: private addresses allowed.
func devSender(t *testing.T, opts webhook.ClientOptions) *webhook.Sender {
	t.Helper()
	opts.AllowPrivate = true
	s := webhook.NewSender(opts)
	t.Cleanup(s.CloseIdleConnections)
	return s
}

func mustSecret(t *testing.T) (string, []byte) {
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

func request(t *testing.T, url string) webhook.Request {
	_, key := mustSecret(t)
	return webhook.Request{
		URL:       url,
		MsgID:     "evt_" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Timestamp: time.Now(),
		Body:      []byte(`{"id":"evt_1","type":"deal.created"}`),
		Secrets:   [][]byte{key},
	}
}

// verifyStandardWebhook checks a delivery the way a receiver following the
// Standard Webhooks specification would: the three headers are there, the
// timestamp is within 5 minutes of now, every signature entry is
// "v1,<base64 of a SHA-256 MAC>". It returns, for each "whsec_" secret,
// whether one of the signatures was made with it.
func verifyStandardWebhook(t *testing.T, h http.Header, body []byte, secrets ...string) []bool {
	t.Helper()
	id := h.Get("webhook-id")
	ts := h.Get("webhook-timestamp")
	if id == "" || ts == "" || h.Get("webhook-signature") == "" {
		t.Fatalf("missing Standard Webhooks headers: %v", h)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q is not integer seconds", ts)
	}
	if d := time.Since(time.Unix(sec, 0)); d < -5*time.Minute || d > 5*time.Minute {
		t.Fatalf("webhook-timestamp %s is %s from now, outside the 5 min tolerance", ts, d)
	}
	for sig := range strings.SplitSeq(h.Get("webhook-signature"), " ") {
		version, b64, found := strings.Cut(sig, ",")
		if !found || version != "v1" {
			t.Fatalf("signature %q is not v1,<base64>", sig)
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err != nil || len(got) != sha256.Size {
			t.Fatalf("signature %q is not base64 of a SHA-256 MAC", sig)
		}
	}
	matched := make([]bool, len(secrets))
	for i, s := range secrets {
		matched[i] = webhooktest.Verify(s, webhooktest.Arrival{Header: h, Body: body})
	}
	return matched
}

func TestSendHeadersAndSignature(t *testing.T) {
	t.Parallel()
	rcv := webhooktest.NewReceiver(t)
	s := devSender(t, webhook.ClientOptions{})
	secret, key := mustSecret(t)
	other, _ := mustSecret(t)
	ts := time.Now()
	req := webhook.Request{
		URL:       rcv.URL() + "/hooks/dealcast?x=1",
		MsgID:     "evt_2Zy3",
		Timestamp: ts,
		Body:      []byte(`{"id":"evt_2Zy3","type":"deal.updated","data":{"deal":{"version":2}}}`),
		Secrets:   [][]byte{key},
		Headers: http.Header{
			"Traceparent":       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"Webhook-Signature": {"v1,forged"},
			"Content-Type":      {"text/plain"},
		},
	}
	res := s.Send(t.Context(), req)
	if res.Outcome != webhook.Succeeded || res.StatusCode != 200 || res.Err != "" {
		t.Fatalf("Send = %+v", res)
	}
	got := rcv.Arrivals()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || string(r.Body) != string(req.Body) {
		t.Fatalf("got %s with body %q", r.Method, r.Body)
	}
	for name, want := range map[string]string{
		"content-type":      "application/json",
		"user-agent":        "Dealcast-Webhooks/1",
		"webhook-id":        "evt_2Zy3",
		"webhook-timestamp": strconv.FormatInt(ts.Unix(), 10),
		"traceparent":       req.Headers.Get("traceparent"),
	} {
		if vs := r.Header.Values(name); len(vs) != 1 || vs[0] != want {
			t.Errorf("header %s = %q, want [%q]", name, vs, want)
		}
	}
	if r.Header.Get("Idempotency-Key") != "" {
		t.Error("the Idempotency-Key marker was sent")
	}
	if sigs := r.Header.Values("webhook-signature"); len(sigs) != 1 || strings.Count(sigs[0], "v1,") != 1 {
		t.Fatalf("webhook-signature = %q, want exactly our one signature", sigs)
	}
	if m := verifyStandardWebhook(t, r.Header, r.Body, secret, other); !m[0] || m[1] {
		t.Fatalf("signature verifies with [endpoint secret, unrelated secret] = %v, want [true false]", m)
	}
}

func TestSendDuringRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	rcv := webhooktest.NewReceiver(t)
	s := devSender(t, webhook.ClientOptions{})
	newSecret, newKey := mustSecret(t)
	oldSecret, oldKey := mustSecret(t)
	req := request(t, rcv.URL())
	req.Secrets = [][]byte{newKey, oldKey}
	if res := s.Send(t.Context(), req); res.Outcome != webhook.Succeeded {
		t.Fatalf("Send = %+v", res)
	}
	r := rcv.Arrivals()[0]
	sigs := strings.Split(r.Header.Get("webhook-signature"), " ")
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature = %q, want two signatures", sigs)
	}
	// Each receiver, whichever secret it holds, accepts the delivery, and
	// each signature is the one made with its own secret.
	if m := verifyStandardWebhook(t, r.Header, r.Body, newSecret, oldSecret); !m[0] || !m[1] {
		t.Fatalf("verified with [new, old] = %v", m)
	}
	for i, secret := range []string{newSecret, oldSecret} {
		h := r.Header.Clone()
		h.Set("webhook-signature", sigs[i])
		if m := verifyStandardWebhook(t, h, r.Body, newSecret, oldSecret); !m[i] || m[1-i] {
			t.Fatalf("signature %d verifies with [new, old] = %v, want only %s", i, m, secret[:10])
		}
	}
}

func TestSendStatusOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		want webhook.Outcome
	}{
		{200, webhook.Succeeded},
		{201, webhook.Succeeded},
		{202, webhook.Succeeded},
		{204, webhook.Succeeded},
		{299, webhook.Succeeded},
		{304, webhook.Retry},
		{400, webhook.Retry},
		{401, webhook.Retry},
		{404, webhook.Retry},
		{408, webhook.Retry},
		{410, webhook.Gone},
		{429, webhook.Retry},
		{500, webhook.Retry},
		{502, webhook.Retry},
		{503, webhook.Retry},
		{504, webhook.Retry},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.code)
				if tc.code != 204 && tc.code != 304 {
					io.WriteString(w, "invalid\x00 signature\n\n  for  endpoint")
				}
			}))
			res := devSender(t, webhook.ClientOptions{}).Send(t.Context(), request(t, rcv.URL()))
			if res.Outcome != tc.want || res.StatusCode != tc.code {
				t.Fatalf("Send = %+v, want %s with status %d", res, tc.want, tc.code)
			}
			if tc.want == webhook.Succeeded && res.Err != "" {
				t.Fatalf("success with Err %q", res.Err)
			}
			if tc.want != webhook.Succeeded {
				want := "HTTP " + strconv.Itoa(tc.code) + " " + http.StatusText(tc.code)
				if tc.code != 304 {
					want += ": invalid signature for endpoint"
				}
				if res.Err != want {
					t.Fatalf("Err = %q, want %q", res.Err, want)
				}
			}
			if res.Duration <= 0 {
				t.Fatal("no duration")
			}
		})
	}
}

func TestSendRetryAfter(t *testing.T) {
	t.Parallel()
	hour := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		code       int
		retryAfter string
		min, max   time.Duration
	}{
		{"429 seconds", 429, "120", 120 * time.Second, 120 * time.Second},
		{"503 seconds", 503, "7", 7 * time.Second, 7 * time.Second},
		{"503 date", 503, hour, time.Hour - 3*time.Second, time.Hour},
		{"429 date", 429, hour, time.Hour - 3*time.Second, time.Hour},
		{"past date", 503, "Wed, 21 Oct 2015 07:28:00 GMT", 0, 0},
		{"capped seconds", 429, "9999999999", 24 * time.Hour, 24 * time.Hour},
		{"capped huge", 429, "99999999999999999999999", 0, 0},
		{"capped date", 503, time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat), 24 * time.Hour, 24 * time.Hour},
		{"garbage", 429, "soon", 0, 0},
		{"negative", 429, "-5", 0, 0},
		{"absent", 503, "", 0, 0},
		{"ignored on 500", 500, "120", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.code)
			}))
			res := devSender(t, webhook.ClientOptions{}).Send(t.Context(), request(t, rcv.URL()))
			if res.Outcome != webhook.Retry || res.StatusCode != tc.code {
				t.Fatalf("Send = %+v", res)
			}
			if res.RetryAfter < tc.min || res.RetryAfter > tc.max {
				t.Fatalf("RetryAfter = %s, want %s..%s", res.RetryAfter, tc.min, tc.max)
			}
		})
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before rcv.Close
	req := request(t, rcv.URL())
	res := devSender(t, webhook.ClientOptions{Timeout: 200 * time.Millisecond}).Send(t.Context(), req)
	if res.Outcome != webhook.Retry || res.StatusCode != 0 {
		t.Fatalf("Send = %+v, want Retry with no status", res)
	}
	if !strings.Contains(res.Err, "timeout") || !strings.Contains(res.Err, "200ms") {
		t.Fatalf("Err = %q, want a timeout message", res.Err)
	}
	if res.Duration < 200*time.Millisecond || res.Duration > 3*time.Second {
		t.Fatalf("Duration = %s, want about 200ms", res.Duration)
	}
	assertNoSecret(t, res, req)
}

func TestSendCallerCancels(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	res := devSender(t, webhook.ClientOptions{}).Send(ctx, request(t, rcv.URL()))
	if res.Outcome != webhook.Retry || !strings.Contains(res.Err, "cancelled") {
		t.Fatalf("Send = %+v, want Retry because the caller gave up", res)
	}
}

func TestSendConnectionError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	req := request(t, "http://"+addr+"/hook?token=receiver-own-secret")
	res := devSender(t, webhook.ClientOptions{}).Send(t.Context(), req)
	if res.Outcome != webhook.Retry || res.StatusCode != 0 || res.Err == "" {
		t.Fatalf("Send = %+v", res)
	}
	if strings.Contains(res.Err, "receiver-own-secret") {
		t.Fatalf("Err repeats the URL query: %q", res.Err)
	}
	assertNoSecret(t, res, req)
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := webhooktest.NewReceiver(t)
	for _, code := range []int{301, 302, 303, 307, 308} {
		rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL()+"/stolen", code)
		}))
		res := devSender(t, webhook.ClientOptions{}).Send(t.Context(), request(t, rcv.URL()))
		if res.Outcome != webhook.Retry || res.StatusCode != code {
			t.Fatalf("%d: Send = %+v, want Retry with status %d", code, res, code)
		}
	}
	if n := len(target.Arrivals()); n != 0 {
		t.Fatalf("redirect target received %d requests", n)
	}
}

func TestSendHugeResponseBody(t *testing.T) {
	t.Parallel()
	var written atomic.Int64
	rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		// Stream without end (bounded at 4 GiB so a broken client fails
		// the test rather than hanging it) until the client hangs up.
		for written.Load() < 4<<30 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	res := devSender(t, webhook.ClientOptions{Timeout: 5 * time.Second}).Send(t.Context(), request(t, rcv.URL()))
	if res.Outcome != webhook.Succeeded || res.StatusCode != 200 {
		t.Fatalf("Send = %+v", res)
	}
	if res.Duration > 3*time.Second {
		t.Fatalf("took %s: the body was read past the limit", res.Duration)
	}
	// The server may have buffered more into the socket than the client
	// read, but nowhere near what it would send to a client that read on.
	if n := written.Load(); n > 64<<20 {
		t.Fatalf("server wrote %d bytes before the client hung up", n)
	}
}

func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	// A body the client reads to the end: up to the limit.
	body := strings.Repeat("k", 32<<10)
	rcv := webhooktest.NewReceiver(t, webhooktest.WithHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("i") == "5" {
			w.WriteHeader(http.StatusServiceUnavailable) // non-2xx keeps the connection too
		}
		io.WriteString(w, body)
	}))
	s := devSender(t, webhook.ClientOptions{})
	for i := range 20 {
		res := s.Send(t.Context(), request(t, rcv.URL()+"/?i="+strconv.Itoa(i)))
		if res.Outcome == webhook.Refused || res.StatusCode == 0 {
			t.Fatalf("send %d: %+v", i, res)
		}
	}
	if got := len(rcv.Arrivals()); got != 20 {
		t.Fatalf("receiver got %d requests, want 20", got)
	}
	if n := rcv.Connections(); n != 1 {
		t.Fatalf("20 sequential sends opened %d connections, want 1", n)
	}
}

func TestSendRefusesPrivateAddressAtDialTime(t *testing.T) {
	t.Parallel()
	rcv := webhooktest.NewReceiver(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rcv.URL(), "http://"))
	// A public-looking name that resolves to loopback, as a DNS rebinding
	// attack or a careless internal record would make it.
	var lookups atomic.Int32
	resolve := func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		if host == "hooks.receiver.test" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}

	url := "https://hooks.receiver.test:" + port + "/hook"
	if err := webhook.CheckURL(url, false); err != nil {
		t.Fatalf("CheckURL refused a hostname it cannot resolve: %v", err)
	}
	prod := webhook.NewSender(webhook.ClientOptions{LookupNetIP: resolve})
	req := request(t, url)
	res := prod.Send(t.Context(), req)
	if res.Outcome != webhook.Refused || res.StatusCode != 0 {
		t.Fatalf("Send = %+v, want Refused", res)
	}
	if !strings.Contains(res.Err, "127.0.0.1 is not a public address") {
		t.Fatalf("Err = %q, want it to name the refused address", res.Err)
	}
	if lookups.Load() == 0 {
		t.Fatal("the resolver hook was not used")
	}
	if n := rcv.Connections(); n != 0 {
		t.Fatalf("receiver accepted %d connections", n)
	}
	assertNoSecret(t, res, req)

	// The same name is delivered to when private addresses are allowed.
	dev := devSender(t, webhook.ClientOptions{LookupNetIP: resolve})
	res = dev.Send(t.Context(), request(t, "http://hooks.receiver.test:"+port+"/hook"))
	if res.Outcome != webhook.Succeeded {
		t.Fatalf("with allowPrivate: Send = %+v", res)
	}
	if len(rcv.Arrivals()) != 1 {
		t.Fatal("receiver did not get the delivery")
	}
}

func TestSendRefusesIPv6AndMappedAtDialTime(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"::1", "::ffff:127.0.0.1", "169.254.169.254", "10.0.0.1"} {
		if addr == "::1" {
			// The check runs once the socket exists, which needs IPv6.
			l, err := net.Listen("tcp6", "[::1]:0")
			if err != nil {
				t.Logf("no IPv6 here, skipping %s: %v", addr, err)
				continue
			}
			l.Close()
		}
		resolve := func(context.Context, string, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr(addr)}, nil
		}
		s := webhook.NewSender(webhook.ClientOptions{LookupNetIP: resolve, Timeout: time.Second})
		res := s.Send(t.Context(), request(t, "https://hooks.example.com/"))
		if res.Outcome != webhook.Refused || !strings.Contains(res.Err, "not a public address") {
			t.Errorf("%s: Send = %+v, want Refused", addr, res)
		}
	}
}

func TestNewClientRefusesLocalhostAtDialTime(t *testing.T) {
	t.Parallel()
	rcv := webhooktest.NewReceiver(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rcv.URL(), "http://"))
	// The system resolver, no hooks: "localhost" comes from /etc/hosts.
	c := webhook.NewClient(webhook.ClientOptions{})
	resp, err := c.Get("http://localhost:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("request to localhost succeeded")
	}
	if !errors.Is(err, webhook.ErrNotPublic) {
		t.Fatalf("err = %v, want ErrNotPublic", err)
	}
	if n := rcv.Connections(); n != 0 {
		t.Fatalf("receiver accepted %d connections", n)
	}
}

func TestSendRefusesBeforeDialling(t *testing.T) {
	t.Parallel()
	rcv := webhooktest.NewReceiver(t)
	s := webhook.NewSender(webhook.ClientOptions{})
	for _, req := range []webhook.Request{
		request(t, rcv.URL()), // http to 127.0.0.1, not allowed in production
		request(t, "https://2130706433/"),
		request(t, "ftp://hooks.example.com/"),
		{URL: "https://hooks.example.com/", MsgID: "evt_1"}, // no secret
	} {
		if res := s.Send(t.Context(), req); res.Outcome != webhook.Refused || res.Err == "" {
			t.Errorf("%v: Send = %+v, want Refused", req, res)
		}
	}
	if n := rcv.Connections(); n != 0 {
		t.Fatalf("receiver accepted %d connections", n)
	}
}

func TestSendTLS(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	quiet := log.New(io.Discard, "", 0) // handshake failures below are expected
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ErrorLog = quiet
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	res := devSender(t, webhook.ClientOptions{RootCAs: roots}).Send(t.Context(), request(t, srv.URL))
	if res.Outcome != webhook.Succeeded || res.StatusCode != 202 {
		t.Fatalf("Send = %+v", res)
	}
	// Without the test CA the certificate is not trusted: a retryable failure.
	res = devSender(t, webhook.ClientOptions{}).Send(t.Context(), request(t, srv.URL))
	if res.Outcome != webhook.Retry || !strings.Contains(res.Err, "certificate") {
		t.Fatalf("untrusted certificate: Send = %+v", res)
	}

	// A receiver stuck on TLS 1.1 is refused by the client.
	old := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	old.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	old.Config.ErrorLog = quiet
	old.StartTLS()
	t.Cleanup(old.Close)
	roots.AddCert(old.Certificate())
	res = devSender(t, webhook.ClientOptions{RootCAs: roots}).Send(t.Context(), request(t, old.URL))
	if res.Outcome != webhook.Retry || res.StatusCode != 0 {
		t.Fatalf("TLS 1.1 receiver: Send = %+v", res)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("handlers ran %d times, want 1", n)
	}
}

func TestRequestStringHidesSecrets(t *testing.T) {
	t.Parallel()
	secret, key := mustSecret(t)
	req := webhook.Request{URL: "https://h.example.com/p?token=abc", MsgID: "evt_1", Secrets: [][]byte{key}}
	out := fmt.Sprintf("%v %+v %#v %s", req, req, req, req)
	for _, leak := range []string{secret, strings.TrimPrefix(secret, "whsec_"), fmt.Sprint(key), "token=abc"} {
		if strings.Contains(out, leak) {
			t.Fatalf("formatted Request leaks %q: %s", leak, out)
		}
	}
}

// assertNoSecret fails if any form of the request's secrets is in the Result.
func assertNoSecret(t *testing.T, res webhook.Result, req webhook.Request) {
	t.Helper()
	out := fmt.Sprintf("%+v", res)
	for _, k := range req.Secrets {
		for _, form := range []string{base64.StdEncoding.EncodeToString(k), fmt.Sprint(k), string(k)} {
			if strings.Contains(out, form) {
				t.Fatalf("result contains a secret: %s", out)
			}
		}
	}
}
