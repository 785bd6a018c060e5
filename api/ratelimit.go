package api

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"

	"github.com/dealcast/dealcast/internal/auth"
)

// RateLimit bounds how fast one caller may send requests: a token bucket
// per account (the token's role and subject), or per client address for
// requests without a valid token.
type RateLimit struct {
	// PerSecond is the sustained rate each caller may keep up; zero (or
	// less) turns rate limiting off.
	PerSecond float64
	// Burst is how many requests a caller may send at once after being
	// idle; zero means twice PerSecond (at least 1).
	Burst int
}

// maxBuckets bounds the limiter's memory whatever the number of callers.
// Past it an arbitrary bucket is forgotten, which at worst gives that
// caller a fresh burst.
const maxBuckets = 1 << 16

// rateLimit returns the huma middleware that enforces l, answering 429
// with Retry-After (RFC 9110 §10.2.3) once a caller's bucket is empty. It
// also documents that answer on every secured operation registered after
// it, so the OpenAPI document says the same whether or not limiting is on.
//
// The middleware runs before authentication, so that floods of bad tokens
// are limited too (by address) and cost no database lookups. To key a
// request by its account it checks the token itself: a token's claims are
// not trusted unverified, or anyone could spend another account's budget.
func rateLimit(a huma.API, l RateLimit, v *auth.Verifier) func(huma.Context, func(huma.Context)) {
	a.OpenAPI().OnAddOperation = append(a.OpenAPI().OnAddOperation, documentRateLimit)
	if l.PerSecond <= 0 {
		return func(ctx huma.Context, next func(huma.Context)) { next(ctx) }
	}
	lim := newBuckets(l, time.Now)
	return func(ctx huma.Context, next func(huma.Context)) {
		if len(ctx.Operation().Security) == 0 {
			next(ctx)
			return
		}
		key, checked := callerKey(ctx, v)
		wait := lim.take(key)
		if wait == 0 {
			if checked != nil {
				// Authentication reuses this check instead of verifying
				// the token a second time.
				ctx = huma.WithValue(ctx, verifiedKey{}, checked)
			}
			next(ctx)
			return
		}
		secs := strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10)
		ctx.SetHeader("Retry-After", secs)
		_ = huma.WriteErr(a, ctx, http.StatusTooManyRequests,
			fmt.Sprintf("too many requests: at most %g per second with bursts of %d; retry after %s s", float64(lim.limit), lim.burst, secs))
	}
}

// callerKey names the bucket of a request: the account of a valid bearer
// token, else the client's address. It returns the token's check, if it
// made one.
func callerKey(ctx huma.Context, v *auth.Verifier) (string, *verification) {
	if v != nil {
		scheme, token, ok := strings.Cut(ctx.Header("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") && token != "" {
			p, err := v.Verify(token)
			checked := &verification{token: token, principal: p, err: err}
			if err == nil {
				return string(p.Role) + ":" + p.Subject, checked
			}
			return "addr:" + clientNetwork(ctx.RemoteAddr()), checked
		}
	}
	return "addr:" + clientNetwork(ctx.RemoteAddr()), nil
}

// verification is the outcome of checking one request's token.
type verification struct {
	token     string
	principal auth.Principal
	err       error
}

type verifiedKey struct{}

// clientNetwork is the client's IP address, or its /64 for IPv6: one host
// commonly holds a whole /64, and could otherwise pick a new address (and
// a new bucket) for every request. Forwarding headers are not trusted.
func clientNetwork(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// buckets holds one token bucket per caller. A bucket left alone for
// burst/rate is full again, exactly like a new one, so forgetting it then
// changes nothing: that is how memory stays bounded by the callers of the
// last few seconds (and by maxBuckets).
type buckets struct {
	limit rate.Limit
	burst int
	now   func() time.Time
	// idle is how long an unused bucket takes to fill up.
	idle time.Duration

	mu        sync.Mutex
	m         map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(l RateLimit, now func() time.Time) *buckets {
	burst := l.Burst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*l.PerSecond)))
	}
	idle := time.Duration(float64(burst) / l.PerSecond * float64(time.Second))
	return &buckets{limit: rate.Limit(l.PerSecond), burst: burst, now: now, idle: idle,
		m: make(map[string]*bucket), lastSweep: now()}
}

// take spends one token of key's bucket. It returns zero when the request
// may go ahead, else how long until a token will be there.
func (b *buckets) take(key string) time.Duration {
	now := b.now()
	b.mu.Lock()
	if now.Sub(b.lastSweep) >= max(b.idle, time.Second) {
		b.sweep(now)
	}
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= maxBuckets {
			for k := range b.m { // an arbitrary one
				delete(b.m, k)
				break
			}
		}
		bk = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.m[key] = bk
	}
	bk.last = now
	b.mu.Unlock()

	r := bk.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	wait := r.DelayFrom(now)
	if wait > 0 {
		// Refused requests do not spend tokens: a client that backs off
		// as told gets through when Retry-After says.
		r.CancelAt(now)
	}
	return wait
}

// sweep forgets the buckets that have filled up again. b.mu is held.
func (b *buckets) sweep(now time.Time) {
	for k, bk := range b.m {
		if now.Sub(bk.last) >= b.idle {
			delete(b.m, k)
		}
	}
	b.lastSweep = now
}

// size is the number of buckets held, for tests.
func (b *buckets) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// documentRateLimit adds the 429 answer to a secured operation.
func documentRateLimit(_ *huma.OpenAPI, op *huma.Operation) {
	if len(op.Security) == 0 || op.Responses == nil {
		return
	}
	if _, ok := op.Responses["429"]; ok {
		return
	}
	// The same problem body as the operation's other errors.
	var content map[string]*huma.MediaType
	for _, code := range []string{"401", "422", "default"} {
		if r, ok := op.Responses[code]; ok && r.Content != nil {
			content = r.Content
			break
		}
	}
	op.Responses["429"] = &huma.Response{
		Description: "Too Many Requests: the caller's rate limit is spent.",
		Headers: map[string]*huma.Param{
			"Retry-After": {
				Description: "Seconds to wait before the next request will be accepted.",
				Schema:      &huma.Schema{Type: huma.TypeInteger, Minimum: ptrFloat(1)},
			},
		},
		Content: content,
	}
}

func ptrFloat(f float64) *float64 { return &f }
