// Package auth turns a bearer token into the principal it speaks for. Keys
// are an HS256 secret (development) and/or a JWKS URL (production, RS256,
// ES256 or EdDSA); each algorithm is pinned to its key source so a token
// can never choose how it is checked.
package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/dealcast/dealcast/internal/account"
)

// Principal is who a request acts as.
type Principal struct {
	Role    account.Role
	Subject string // account ID for sellers and buyers; any identifier for operators
}

// Is reports whether p is the account id of role.
func (p Principal) Is(role account.Role, id string) bool { return p.Role == role && p.Subject == id }

// Claims are the token claims Dealcast reads.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// ErrInvalidToken is any token that must be refused with 401.
var ErrInvalidToken = errors.New("invalid token")

// Leeway is the clock skew tolerated on exp and nbf.
const Leeway = 30 * time.Second

var asymmetric = []string{"RS256", "ES256", "EdDSA"}

// Options configure a Verifier.
type Options struct {
	Secret   string // HS256 key; empty disables HS256
	JWKSURL  string // production key set; empty disables asymmetric keys
	Issuer   string // checked when set
	Audience string // checked when set
}

// Verifier checks tokens.
type Verifier struct {
	parser *jwt.Parser
	secret []byte
	jwks   keyfunc.Keyfunc
	// lookups lets concurrent tokens with the same new kid share one key
	// set refresh instead of racing for the rate limiter.
	lookups singleflight.Group
	// refresh allows a key set refresh for an unknown kid at most once per
	// 10 s. Beyond that such tokens are refused at once, never queued: the
	// kid is read before any signature check, so anyone can make them up.
	refresh *rate.Limiter
	// knownKIDs are the key ids found in the key set, so the common case
	// needs no look at the limiter.
	knownKIDs sync.Map
	// verified remembers tokens that passed, so a client's next requests
	// with the same token skip the signature check and the claims parse,
	// the costly part of authenticating. Only valid tokens get in, so its
	// size is bounded by live clients; it is emptied when it reaches
	// maxVerified all the same.
	verified  sync.Map // token -> verifiedToken
	nVerified atomic.Int64
}

// verifiedToken is a cached check: the principal, and until when the
// token may be taken without a new check.
type verifiedToken struct {
	p     Principal
	until time.Time
}

const (
	// VerifiedFor bounds how long a checked token is trusted without a new
	// check, whatever its expiry: a key removed from the key set stops
	// working within this time.
	VerifiedFor = time.Minute
	maxVerified = 50_000
)

// NewVerifier builds a verifier. With a JWKS URL the key set is fetched in
// the background and refreshed hourly and when a token names an unknown
// kid; if the JWKS server is down, known keys keep working.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	v := &Verifier{secret: []byte(o.Secret), refresh: rate.NewLimiter(rate.Every(10*time.Second), 1)}
	var methods []string
	if o.Secret != "" {
		methods = append(methods, "HS256")
	}
	if o.JWKSURL != "" {
		// The library refreshes the key set whenever asked about an
		// unknown kid; Verifier.key decides when to ask (see refresh).
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{o.JWKSURL}, keyfunc.Override{
			RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
			RateLimitWaitMax:  10 * time.Second, // bounds one refresh
		})
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		v.jwks = k
		methods = append(methods, asymmetric...)
	}
	if len(methods) == 0 {
		return nil, errors.New("no token keys configured")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// key picks the verification key by the token's algorithm: the secret for
// HS256 only, the key set for the asymmetric ones only.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if t.Method.Alg() == "HS256" {
		if len(v.secret) == 0 {
			return nil, ErrInvalidToken
		}
		return v.secret, nil
	}
	if v.jwks == nil {
		return nil, ErrInvalidToken
	}
	kid, _ := t.Header["kid"].(string)
	key, err, _ := v.lookups.Do(t.Method.Alg()+"\x00"+kid, func() (any, error) {
		_, known := v.knownKIDs.Load(kid)
		if !known && kid != "" && !v.inKeySet(kid) && !v.refresh.Allow() {
			return nil, fmt.Errorf("%w: unknown key id %q", ErrInvalidToken, kid)
		}
		key, err := v.jwks.Keyfunc(t)
		// Only kids the key set really holds are remembered, so the set
		// stays as small as the key set.
		if err == nil {
			v.knownKIDs.Store(kid, struct{}{})
		} else {
			v.knownKIDs.Delete(kid)
		}
		return key, err
	})
	return key, err
}

// inKeySet reports whether the key set already holds kid, without
// refreshing it: the first token of each real kid, before knownKIDs has it.
func (v *Verifier) inKeySet(kid string) bool {
	keys, err := v.jwks.Storage().KeyReadAll(context.Background())
	if err != nil {
		return false
	}
	for _, k := range keys {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// Verify checks a token and returns its principal.
func (v *Verifier) Verify(token string) (Principal, error) {
	now := time.Now()
	if hit, ok := v.verified.Load(token); ok {
		if t := hit.(verifiedToken); now.Before(t.until) {
			return t.p, nil
		}
		v.verified.Delete(token)
	}
	p, exp, err := v.check(token)
	if err != nil {
		return Principal{}, err
	}
	if v.nVerified.Add(1) > maxVerified {
		v.verified.Clear()
		v.nVerified.Store(1)
	}
	// The parser accepts the token up to exp plus the leeway.
	until := now.Add(VerifiedFor)
	if e := exp.Add(Leeway); e.Before(until) {
		until = e
	}
	v.verified.Store(token, verifiedToken{p: p, until: until})
	return p, nil
}

// check verifies a token's signature and claims and returns its principal
// and expiry.
func (v *Verifier) check(token string) (Principal, time.Time, error) {
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p := Principal{Role: account.Role(c.Role), Subject: c.Subject}
	switch p.Role {
	case account.RoleSeller, account.RoleBuyer:
		id, err := uuid.Parse(p.Subject)
		if err != nil {
			return Principal{}, time.Time{}, fmt.Errorf("%w: sub must be an account id", ErrInvalidToken)
		}
		p.Subject = id.String() // one spelling, so comparisons with stored IDs hold
	case account.RoleOperator:
		if p.Subject == "" {
			return Principal{}, time.Time{}, fmt.Errorf("%w: sub is required", ErrInvalidToken)
		}
	default:
		return Principal{}, time.Time{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, c.Role)
	}
	return p, c.ExpiresAt.Time, nil
}

// MintOptions are the optional claims of a minted token.
type MintOptions struct {
	Issuer   string
	Audience string
}

// Mint signs a development token with the HS256 secret.
func Mint(secret string, role account.Role, sub string, ttl time.Duration, o MintOptions) (string, error) {
	if secret == "" {
		return "", errors.New("no HS256 secret")
	}
	now := time.Now()
	c := Claims{
		Role: string(role),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			Issuer:    o.Issuer,
		},
	}
	if o.Audience != "" {
		c.Audience = jwt.ClaimStrings{o.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
