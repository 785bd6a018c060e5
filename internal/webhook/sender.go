package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults for ClientOptions, from the contract (10 s per attempt) and
// from what keeps one busy receiver on a handful of warm connections.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultMaxIdleConnsPerHost = 64

	// UserAgent identifies Dealcast to receivers and their firewalls.
	UserAgent = "Dealcast-Webhooks/1"

	// MaxResponseBody is how much of a receiver's response is read. The
	// body carries no meaning to Dealcast; reading a bounded amount lets
	// small responses end cleanly so the connection is reused, while a
	// receiver streaming gigabytes cannot hold an attempt open or fill
	// memory.
	MaxResponseBody = 64 << 10

	// MaxRetryAfter caps a receiver's Retry-After so a typo or a hostile
	// value cannot park a delivery for months.
	MaxRetryAfter = 24 * time.Hour
)

// errSnippet is how much of a non-2xx response body goes into Result.Err:
// enough for "invalid signature" or a framework's error title, not a page.
const errSnippet = 200

// maxErrLen bounds Result.Err, which is stored as last_error and shown to
// the buyer.
const maxErrLen = 512

// ClientOptions configures the HTTP client used for deliveries.
type ClientOptions struct {
	// AllowPrivate disables the address checks, for local development
	// and tests (DEALCAST_WEBHOOK_ALLOW_PRIVATE). It also allows http.
	AllowPrivate bool
	// Timeout bounds one attempt from dialling to the end of reading the
	// response. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections are
	// kept per receiver. Zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// RootCAs verifies receivers' certificates; nil means the system
	// roots. Tests set it to an httptest server's certificate.
	RootCAs *x509.CertPool
	// LookupNetIP, if set, replaces DNS resolution of hostnames (it has
	// the shape of net.Resolver.LookupNetIP). Tests use it to make a name
	// resolve to a private address; the address check at dial time
	// applies to whatever it returns.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	return o
}

// NewClient returns an http.Client for deliveries:
//
//   - Unless AllowPrivate, every connection is checked at dial time against
//     the address actually being dialled (IsPublicIP), after DNS
//     resolution. A registration-time check of the hostname cannot stop a
//     name that later resolves to 127.0.0.1 or 169.254.169.254 (DNS
//     rebinding); this can. Refused dials fail with an error wrapping
//     ErrNotPublic.
//   - Redirects are not followed: a 3xx is returned as it is, and counts
//     as a failed attempt. Following one would let a receiver point
//     Dealcast at any address, and re-send a signed body elsewhere.
//   - Proxy settings from the environment are ignored, so a stray
//     HTTPS_PROXY cannot route deliveries (and their bodies) elsewhere or
//     bypass the address check.
//   - TLS 1.2 or later; HTTP keep-alive with MaxIdleConnsPerHost idle
//     connections per receiver, since one buyer endpoint typically gets
//     bursts of deliveries.
func NewClient(opts ClientOptions) *http.Client {
	opts = opts.withDefaults()
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = refuseNonPublic
	}
	dial := dialer.DialContext
	if opts.LookupNetIP != nil {
		dial = dialVia(dialer, opts.LookupNetIP)
	}
	transport := &http.Transport{
		Proxy:       nil,
		DialContext: dial,
		// A custom DialContext turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    opts.RootCAs,
		},
		TLSHandshakeTimeout:    opts.Timeout,
		MaxIdleConns:           16 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: MaxResponseBody,
		// Bodies are read only to be discarded; decompressing them would
		// be work (and a zip-bomb surface) for nothing.
		DisableCompression: true,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// refuseNonPublic is a net.Dialer Control function: it runs after
// resolution, just before connect, with the literal address being dialled.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q", ErrNotPublic, address)
	}
	if !IsPublicIP(ap.Addr()) {
		return fmt.Errorf("%s is %w", ap.Addr(), ErrNotPublic)
	}
	return nil
}

// dialVia resolves hostnames with lookup and dials the results in order
// through d, whose Control function still checks each address.
func dialVia(d *net.Dialer, lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return d.DialContext(ctx, network, addr)
		}
		ipNetwork := "ip"
		switch network {
		case "tcp4":
			ipNetwork = "ip4"
		case "tcp6":
			ipNetwork = "ip6"
		}
		addrs, err := lookup(ctx, ipNetwork, host)
		if err != nil {
			return nil, &net.DNSError{Err: err.Error(), Name: host}
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		var errs []error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}

// Outcome is what the caller should do after an attempt.
type Outcome string

const (
	// Succeeded: the receiver answered 2xx.
	Succeeded Outcome = "succeeded"
	// Retry: any other status (including 3xx, 408, 429 and 5xx), a
	// timeout, or a connection or TLS error. Schedule another attempt,
	// no sooner than Result.RetryAfter if that is set.
	Retry Outcome = "retry"
	// Gone: the receiver answered 410; disable the endpoint.
	Gone Outcome = "gone"
	// Refused: the attempt was not made because configuration forbids
	// it, most often because the host resolved to a non-public address.
	// Retrying the same configuration will not help; record the attempt
	// as failed with Result.Err as the reason.
	Refused Outcome = "refused"
)

// Request is one delivery attempt.
type Request struct {
	URL   string
	MsgID string // webhook-id: the event id, the same on every attempt
	// Timestamp is webhook-timestamp and is signed. Receivers reject
	// timestamps far from their clock, so use the time of the attempt;
	// zero means now.
	Timestamp time.Time
	Body      []byte
	Secrets   [][]byte    // decoded signing keys: one, or two during rotation
	Headers   http.Header // extra headers, e.g. traceparent; cannot replace the webhook ones
}

// String describes the request without its secrets or body, so a Request
// can be printed or logged by mistake without leaking keys.
func (r Request) String() string {
	return fmt.Sprintf("webhook.Request{URL: %s, MsgID: %s, Body: %d bytes, Secrets: %d}",
		redactURL(r.URL), r.MsgID, len(r.Body), len(r.Secrets))
}

// GoString keeps %#v from printing the secrets.
func (r Request) GoString() string { return r.String() }

// LogValue describes the request to slog without its secrets or body.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(r.URL)),
		slog.String("msg_id", r.MsgID),
		slog.Int("body_bytes", len(r.Body)),
		slog.Int("secrets", len(r.Secrets)),
	)
}

// redactURL drops the query, userinfo and fragment, where receivers
// sometimes put their own tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// Result is what happened in one attempt.
type Result struct {
	StatusCode int     `json:"status_code,omitempty"` // 0 if no response
	Outcome    Outcome `json:"outcome"`
	// RetryAfter is the receiver's Retry-After on a 429 or 503, capped
	// at MaxRetryAfter; zero if absent or unusable.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// Err explains anything but a success, in words fit for last_error.
	// It never contains secrets.
	Err      string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Sender makes delivery attempts. It is safe for concurrent use; make one
// per process so connections are shared.
type Sender struct {
	client       *http.Client
	allowPrivate bool
	timeout      time.Duration
	now          func() time.Time
}

// NewSender returns a Sender using a client from NewClient(opts).
func NewSender(opts ClientOptions) *Sender {
	opts = opts.withDefaults()
	return &Sender{
		client:       NewClient(opts),
		allowPrivate: opts.AllowPrivate,
		timeout:      opts.Timeout,
		now:          time.Now,
	}
}

// CloseIdleConnections closes kept-alive connections, for shutdown.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Send makes one attempt: it POSTs r.Body to r.URL with the Standard
// Webhooks headers and classifies the answer. It never returns an error;
// everything the caller needs to record and decide is in the Result.
func (s *Sender) Send(ctx context.Context, r Request) Result {
	start := time.Now()
	res := s.send(ctx, r)
	res.Duration = time.Since(start)
	if len(res.Err) > maxErrLen {
		res.Err = strings.ToValidUTF8(res.Err[:maxErrLen], "") + "…"
	}
	return res
}

func (s *Sender) send(ctx context.Context, r Request) Result {
	// The URL was checked at registration, but the rules (or the
	// AllowPrivate setting) may have changed since.
	if err := CheckURL(r.URL, s.allowPrivate); err != nil {
		return Result{Outcome: Refused, Err: err.Error()}
	}
	if len(r.Secrets) == 0 {
		return Result{Outcome: Refused, Err: "no signing secret"}
	}
	if r.MsgID == "" {
		return Result{Outcome: Refused, Err: "no message id"}
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = s.now()
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Result{Outcome: Refused, Err: "invalid request: " + unwrapURLError(err).Error()}
	}
	for k, vs := range r.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	// Set after the extras so they cannot be overridden.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Webhook-Id", r.MsgID)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("Webhook-Signature", Sign(r.MsgID, ts, r.Body, r.Secrets...))
	// A nil Idempotency-Key is not sent, but tells the transport the POST
	// may be replayed if a kept-alive connection turns out to have been
	// closed by the receiver before the request was written. Receivers
	// deduplicate on webhook-id, so that is safe, and it avoids spurious
	// failed attempts on idle connections.
	req.Header["Idempotency-Key"] = nil

	resp, err := s.client.Do(req)
	if err != nil {
		return s.classifyError(ctx, err)
	}
	defer resp.Body.Close()

	// Read a little for the error message, then discard up to the limit so
	// a normal-sized body ends at EOF and the connection goes back to the
	// pool. Read errors do not matter: the status line has been received.
	var head [errSnippet]byte
	n, _ := io.ReadFull(resp.Body, head[:])
	if n == len(head) {
		_, _ = io.CopyN(io.Discard, resp.Body, MaxResponseBody-int64(n)+1)
	}

	res := Result{StatusCode: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		res.Outcome = Succeeded
		return res
	case code == http.StatusGone:
		res.Outcome = Gone
	default:
		res.Outcome = Retry
	}
	if code := resp.StatusCode; code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	res.Err = statusError(resp, head[:n])
	return res
}

// classifyError turns a failed round trip into a Result.
func (s *Sender) classifyError(ctx context.Context, err error) Result {
	// The *url.Error wrapper repeats the URL, which may carry the
	// receiver's own credentials in its query; the cause is enough.
	err = unwrapURLError(err)
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotPublic):
		return Result{Outcome: Refused, Err: "refused: " + err.Error()}
	case ctx.Err() != nil:
		// The caller gave up (activity cancelled or its deadline hit),
		// not the receiver.
		return Result{Outcome: Retry, Err: "attempt cancelled: " + ctx.Err().Error()}
	case errors.As(err, &ne) && ne.Timeout():
		return Result{Outcome: Retry, Err: fmt.Sprintf("timeout: no complete response within %s", s.timeout)}
	default:
		return Result{Outcome: Retry, Err: err.Error()}
	}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError describes a non-2xx response, with the start of its body
// because receivers often say there what is wrong ("invalid signature").
func statusError(resp *http.Response, body []byte) string {
	msg := "HTTP " + resp.Status
	if resp.Status == "" {
		msg = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if s := printable(body); s != "" {
		msg += ": " + s
	}
	return msg
}

// printable makes response bytes safe to store and display: valid UTF-8,
// control characters as spaces, runs of space collapsed.
func printable(b []byte) string {
	var sb strings.Builder
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r == utf8.RuneError && size <= 1 {
			if len(b) == 0 {
				break // probably a rune cut by the snippet limit
			}
			r = '\uFFFD'
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return sb.String()
}

// parseRetryAfter reads a Retry-After value, delta-seconds or an HTTP
// date, relative to now. Unusable values give zero, so the caller's own
// backoff applies.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return max(0, min(d, MaxRetryAfter))
}
