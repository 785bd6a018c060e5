package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
)

const secret = "auth-test-secret-hs256"

// claims are valid claims for role and sub, expiring in an hour; tests
// change or delete entries to make them invalid.
func claims(role, sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"role": role,
		"sub":  sub,
		"iat":  now.Unix(),
		"exp":  now.Add(time.Hour).Unix(),
	}
}

// sign signs c with method and key, naming kid in the header when set.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hs256(t *testing.T, c jwt.Claims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(secret), "", c)
}

func newVerifier(t *testing.T, o auth.Options) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// refused fails unless v refuses token with ErrInvalidToken.
func refused(t *testing.T, v *auth.Verifier, token string) {
	t.Helper()
	p, err := v.Verify(token)
	if err == nil {
		t.Fatalf("token accepted as %+v, want refused", p)
	}
	if !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("error %v does not wrap ErrInvalidToken", err)
	}
}

// accepted fails unless v accepts token as role and sub.
func accepted(t *testing.T, v *auth.Verifier, token string, role store.Role, sub string) {
	t.Helper()
	p, err := v.Verify(token)
	if err != nil {
		t.Fatalf("token refused: %v", err)
	}
	if p != (auth.Principal{Role: role, Subject: sub}) {
		t.Fatalf("principal %+v, want %s %s", p, role, sub)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestNewVerifierNeedsAKey(t *testing.T) {
	t.Parallel()
	if _, err := auth.NewVerifier(t.Context(), auth.Options{}); err == nil {
		t.Fatal("a verifier without keys was built")
	}
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	id := uuid.NewString()
	for _, role := range []store.Role{store.RoleSeller, store.RoleBuyer} {
		accepted(t, v, hs256(t, claims(string(role), id)), role, id)
	}
	accepted(t, v, hs256(t, claims("operator", "ops-1")), store.RoleOperator, "ops-1")

	minted, err := auth.Mint(secret, store.RoleSeller, id, time.Minute, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(minted)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Is(store.RoleSeller, id) || p.Is(store.RoleBuyer, id) || p.Is(store.RoleSeller, uuid.NewString()) {
		t.Fatalf("Principal.Is wrong for %+v", p)
	}
}

func TestMintWithoutSecret(t *testing.T) {
	t.Parallel()
	if _, err := auth.Mint("", store.RoleOperator, "ops", time.Minute, auth.MintOptions{}); err == nil {
		t.Fatal("minted a token without a secret")
	}
}

func TestVerifyRefusesAlgNone(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	c := claims("operator", "ops-1")
	refused(t, v, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", c))

	// Hand-made variants, including one that keeps a valid HS256 signature
	// but announces another algorithm.
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	good := strings.Split(hs256(t, c), ".")
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		header := b64([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		refused(t, v, header+"."+b64(payload)+".")
		refused(t, v, header+"."+good[1]+"."+good[2])
	}
}

func TestVerifyRefusesOtherHMACAlgorithms(t *testing.T) {
	t.Parallel()
	// HS256 is the only symmetric algorithm; the same secret under HS384
	// or HS512 must not be accepted.
	v := newVerifier(t, auth.Options{Secret: secret})
	c := claims("operator", "ops-1")
	refused(t, v, sign(t, jwt.SigningMethodHS384, []byte(secret), "", c))
	refused(t, v, sign(t, jwt.SigningMethodHS512, []byte(secret), "", c))
}

func TestVerifyRefusesWrongSignature(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	buyer := uuid.NewString()
	refused(t, v, sign(t, jwt.SigningMethodHS256, []byte("another-secret"), "", claims("buyer", buyer)))

	// A valid token whose payload is swapped for one with more privilege.
	parts := strings.Split(hs256(t, claims("buyer", buyer)), ".")
	forged, err := json.Marshal(claims("operator", "ops-1"))
	if err != nil {
		t.Fatal(err)
	}
	refused(t, v, parts[0]+"."+b64(forged)+"."+parts[2])
	// The right token with its signature cut off or mangled.
	refused(t, v, parts[0]+"."+parts[1]+".")
	refused(t, v, parts[0]+"."+parts[1]+"."+b64([]byte("not the signature at all, 32 by")))
}

func TestVerifyRefusesGarbage(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	for _, tok := range []string{"", "garbage", "a.b.c", "a.b", "....", strings.Repeat("x", 10000)} {
		refused(t, v, tok)
	}
}

func TestVerifyTimeClaims(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	now := time.Now()
	id := uuid.NewString()
	for _, tc := range []struct {
		name string
		set  func(jwt.MapClaims)
		ok   bool
	}{
		{"expired beyond the leeway", func(c jwt.MapClaims) { c["exp"] = now.Add(-auth.Leeway - 30*time.Second).Unix() }, false},
		{"expired a day ago", func(c jwt.MapClaims) { c["exp"] = now.Add(-24 * time.Hour).Unix() }, false},
		{"expired within the leeway", func(c jwt.MapClaims) { c["exp"] = now.Add(-auth.Leeway / 3).Unix() }, true},
		{"not yet valid beyond the leeway", func(c jwt.MapClaims) { c["nbf"] = now.Add(auth.Leeway + 30*time.Second).Unix() }, false},
		{"not yet valid within the leeway", func(c jwt.MapClaims) { c["nbf"] = now.Add(auth.Leeway / 3).Unix() }, true},
		{"valid since a minute ago", func(c jwt.MapClaims) { c["nbf"] = now.Add(-time.Minute).Unix() }, true},
		{"missing exp", func(c jwt.MapClaims) { delete(c, "exp") }, false},
		{"exp not a number", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := claims("seller", id)
			tc.set(c)
			tok := hs256(t, c)
			if tc.ok {
				accepted(t, v, tok, store.RoleSeller, id)
			} else {
				refused(t, v, tok)
			}
		})
	}
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	t.Parallel()
	const iss, aud = "https://issuer.example", "dealcast"
	strict := newVerifier(t, auth.Options{Secret: secret, Issuer: iss, Audience: aud})
	lax := newVerifier(t, auth.Options{Secret: secret})
	for _, tc := range []struct {
		name string
		set  func(jwt.MapClaims)
		ok   bool // for the verifier that checks iss and aud
	}{
		{"right iss and aud", func(c jwt.MapClaims) { c["iss"], c["aud"] = iss, aud }, true},
		{"aud list containing ours", func(c jwt.MapClaims) { c["iss"], c["aud"] = iss, []string{"other", aud} }, true},
		{"wrong iss", func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://evil.example", aud }, false},
		{"missing iss", func(c jwt.MapClaims) { c["aud"] = aud }, false},
		{"wrong aud", func(c jwt.MapClaims) { c["iss"], c["aud"] = iss, "other" }, false},
		{"aud list without ours", func(c jwt.MapClaims) { c["iss"], c["aud"] = iss, []string{"a", "b"} }, false},
		{"missing aud", func(c jwt.MapClaims) { c["iss"] = iss }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := claims("operator", "ops-1")
			tc.set(c)
			tok := hs256(t, c)
			if tc.ok {
				accepted(t, strict, tok, store.RoleOperator, "ops-1")
			} else {
				refused(t, strict, tok)
			}
			// Unconfigured, iss and aud are not checked.
			accepted(t, lax, tok, store.RoleOperator, "ops-1")
		})
	}

	minted, err := auth.Mint(secret, store.RoleOperator, "ops-1", time.Minute, auth.MintOptions{Issuer: iss, Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	accepted(t, strict, minted, store.RoleOperator, "ops-1")
}

func TestVerifyRoleAndSubject(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	id := uuid.NewString()
	for _, tc := range []struct {
		name string
		c    jwt.MapClaims
	}{
		{"seller without sub", claims("seller", "")},
		{"buyer without sub", claims("buyer", "")},
		{"operator without sub", claims("operator", "")},
		{"unknown role", claims("admin", id)},
		{"role in another case", claims("Seller", id)},
		{"empty role", claims("", id)},
		{"seller sub not a UUID", claims("seller", "acme")},
		{"buyer sub not a UUID", claims("buyer", "42")},
		{"seller sub a UUID with junk", claims("seller", id+"x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refused(t, v, hs256(t, tc.c))
		})
	}
	t.Run("missing role", func(t *testing.T) {
		t.Parallel()
		c := claims("seller", id)
		delete(c, "role")
		refused(t, v, hs256(t, c))
	})
	t.Run("missing sub", func(t *testing.T) {
		t.Parallel()
		c := claims("operator", "x")
		delete(c, "sub")
		refused(t, v, hs256(t, c))
	})
	t.Run("role not a string", func(t *testing.T) {
		t.Parallel()
		c := claims("seller", id)
		c["role"] = []string{"seller", "operator"}
		refused(t, v, hs256(t, c))
	})
}

// TestVerifyNonCanonicalAccountID: uuid.Parse also accepts "urn:uuid:…",
// "{…}", upper case and 32 hex digits. A seller or buyer sub in such a
// spelling must either be refused or come out as the account id in the
// form the API issues, since handlers compare it with ids as strings (and
// PostgreSQL refuses the urn form, which would surface as a 503).
func TestVerifyNonCanonicalAccountID(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	id := uuid.NewString()
	for _, sub := range []string{
		"urn:uuid:" + id,
		"{" + id + "}",
		strings.ReplaceAll(id, "-", ""),
		strings.ToUpper(id),
	} {
		t.Run(sub, func(t *testing.T) {
			t.Parallel()
			for _, role := range []store.Role{store.RoleSeller, store.RoleBuyer} {
				p, err := v.Verify(hs256(t, claims(string(role), sub)))
				if err == nil && p != (auth.Principal{Role: role, Subject: id}) {
					t.Fatalf("%s sub %q accepted as %+v, want refused or subject %s", role, sub, p, id)
				}
			}
		})
	}
}

// Asymmetric keys, shared by the JWKS tests: generating RSA keys is slow
// under the race detector.
type keys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var testKeys = sync.OnceValues(func() (keys, error) {
	var k keys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return k, err
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	return k, err
})

func getKeys(t *testing.T) keys {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwk is one public key in JWK form (RFC 7517, 7518, 8037), written by
// hand so the test does not trust the library that reads it.
func jwk(t *testing.T, kid string, pub any) map[string]any {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		ec, err := k.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		raw := ec.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
		return map[string]any{"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
			"x": b64(raw[1:33]), "y": b64(raw[33:])}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64(k)}
	}
	t.Fatalf("no JWK for %T", pub)
	return nil
}

// jwksServer serves a JWK set that tests can change while it runs.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]any
	status  int           // when not 0, answered instead of the set
	delay   time.Duration // before each answer
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		status, delay := s.status, s.delay
		body, err := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		time.Sleep(delay)
		if err != nil || status != 0 {
			w.WriteHeader(max(status, http.StatusInternalServerError))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(k map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
}

func (s *jwksServer) set(status int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.delay = status, delay
}

// standardJWKS serves the RSA, EC and Ed25519 test keys as kids "rsa",
// "ec" and "ed".
func standardJWKS(t *testing.T) (*jwksServer, keys) {
	t.Helper()
	k := getKeys(t)
	return newJWKSServer(t,
		jwk(t, "rsa", &k.rsa.PublicKey),
		jwk(t, "ec", &k.ec.PublicKey),
		jwk(t, "ed", k.ed.Public()),
	), k
}

// asymmetricTokens are one valid token per asymmetric algorithm.
func asymmetricTokens(t *testing.T, k keys, role, sub string) map[string]string {
	t.Helper()
	return map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims(role, sub)),
		"ES256": sign(t, jwt.SigningMethodES256, k.ec, "ec", claims(role, sub)),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims(role, sub)),
	}
}

func TestVerifyJWKS(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	id := uuid.NewString()
	for alg, tok := range asymmetricTokens(t, k, "buyer", id) {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			accepted(t, v, tok, store.RoleBuyer, id)
		})
	}
	// Claims are checked the same way whatever the key.
	expired := claims("buyer", id)
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	refused(t, v, sign(t, jwt.SigningMethodES256, k.ec, "ec", expired))
	refused(t, v, sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims("buyer", "not-a-uuid")))
	// HS256 is not configured: a token signed with some secret is refused.
	refused(t, v, hs256(t, claims("operator", "ops-1")))
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want once", n)
	}
}

func TestVerifyJWKSWithSecret(t *testing.T) {
	t.Parallel()
	// Both key sources at once: each algorithm still goes to its own.
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{Secret: secret, JWKSURL: srv.URL})
	id := uuid.NewString()
	for _, tok := range asymmetricTokens(t, k, "seller", id) {
		accepted(t, v, tok, store.RoleSeller, id)
	}
	accepted(t, v, hs256(t, claims("seller", id)), store.RoleSeller, id)
	// An HS256 token naming a JWKS key is still checked with the secret.
	refused(t, v, sign(t, jwt.SigningMethodHS256, []byte("not-the-secret"), "rsa", claims("seller", id)))
}

func TestVerifyJWKSRefusesForeignKeys(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	id := uuid.NewString()
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by keys not in the set, under the kids of keys that are.
	refused(t, v, sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa", claims("seller", id)))
	refused(t, v, sign(t, jwt.SigningMethodES256, otherEC, "ec", claims("seller", id)))
	refused(t, v, sign(t, jwt.SigningMethodEdDSA, otherEd, "ed", claims("seller", id)))
	// The right key under the kid of another key type.
	refused(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, "ec", claims("seller", id)))
	refused(t, v, sign(t, jwt.SigningMethodES256, k.ec, "rsa", claims("seller", id)))
	// Other asymmetric algorithms than the three of the contract.
	refused(t, v, sign(t, jwt.SigningMethodPS256, k.rsa, "rsa", claims("seller", id)))
	refused(t, v, sign(t, jwt.SigningMethodRS512, k.rsa, "rsa", claims("seller", id)))
}

func TestVerifyRefusesAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	// The classic attack: an HS256 token whose HMAC key is the server's
	// RSA public key, in every encoding an attacker might guess.
	srv, k := standardJWKS(t)
	pub := &k.rsa.PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	jwkJSON, err := json.Marshal(jwk(t, "rsa", pub))
	if err != nil {
		t.Fatal(err)
	}
	candidates := map[string][]byte{
		"PKIX PEM":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS1 PEM": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"PKIX DER":  pkix,
		"modulus":   pub.N.Bytes(),
		"JWK JSON":  jwkJSON,
	}
	jwksOnly := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	both := newVerifier(t, auth.Options{Secret: secret, JWKSURL: srv.URL})
	for name, key := range candidates {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, kid := range []string{"rsa", ""} {
				tok := sign(t, jwt.SigningMethodHS256, key, kid, claims("operator", "ops-1"))
				refused(t, jwksOnly, tok)
				refused(t, both, tok)
			}
		})
	}
}

func TestVerifyJWKSKeyRotation(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	id := uuid.NewString()
	accepted(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims("seller", id)), store.RoleSeller, id)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times before rotation, want once", n)
	}

	// The issuer publishes a new key after the verifier started. This is
	// the verifier's first unknown kid, so the rate limiter lets its
	// refresh through at once.
	srv.add(jwk(t, "rsa-2026", &k.rsa2.PublicKey))
	start := time.Now()
	accepted(t, v, sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-2026", claims("seller", id)), store.RoleSeller, id)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("rotation took %v", d)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want twice", n)
	}
	// Known kids, old and new, need no more fetches.
	accepted(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims("seller", id)), store.RoleSeller, id)
	accepted(t, v, sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-2026", claims("seller", id)), store.RoleSeller, id)
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want twice", n)
	}
}

func TestVerifyJWKSServerDownAfterFirstFetch(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	srv.Close()
	id := uuid.NewString()
	for alg, tok := range asymmetricTokens(t, k, "seller", id) {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			accepted(t, v, tok, store.RoleSeller, id)
		})
	}
	// An unknown kid cannot be fetched: refused, not a panic or a hang.
	refused(t, v, sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-next", claims("seller", id)))
	// And the known keys survive the failed refresh.
	accepted(t, v, asymmetricTokens(t, k, "seller", id)["ES256"], store.RoleSeller, id)
}

func TestVerifyJWKSServerDownAtStart(t *testing.T) {
	t.Parallel()
	// The service must start while the key server is unavailable, and
	// pick the keys up without a restart once it is back.
	srv, k := standardJWKS(t)
	srv.set(http.StatusServiceUnavailable, 0)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	srv.set(0, 0)
	id := uuid.NewString()
	accepted(t, v, sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims("buyer", id)), store.RoleBuyer, id)
	accepted(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa", claims("buyer", id)), store.RoleBuyer, id)
}

// TestVerifyUnknownKIDFailsFast documents a bug: once the unknown-kid
// refresh has been used, every further token with an unknown kid blocks in
// Verify until the rate limiter refills (10 s, queueing behind each other
// up to keyfunc's default RateLimitWaitMax of a minute). The kid is read
// before any signature check, so anyone can hold request goroutines that
// long with made-up kids.
func TestVerifyUnknownKIDFailsFast(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	id := uuid.NewString()
	// Uses up the unknown-kid refresh.
	refused(t, v, sign(t, jwt.SigningMethodRS256, k.rsa2, "made-up-1", claims("seller", id)))

	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, "made-up-2", claims("seller", id))
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(tok)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("token with an unknown kid accepted")
		}
	case <-time.After(3 * time.Second):
		// The goroutine ends when the test's context, the verifier's, is cancelled.
		t.Fatal("Verify of a token with an unknown kid still blocked after 3 s")
	}
}

// TestVerifyJWKSRotationUnderLoad documents the user-visible side of the
// same bug: when several requests carry a newly published kid at once,
// only the first refresh is let through; the others wait 10 s each in turn
// (without looking at the refreshed set again) or, past a minute, fail.
// Valid tokens must verify promptly.
func TestVerifyJWKSRotationUnderLoad(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	v := newVerifier(t, auth.Options{JWKSURL: srv.URL})
	srv.add(jwk(t, "rsa-new", &k.rsa2.PublicKey))
	srv.set(0, 300*time.Millisecond) // a refresh takes a moment, as over a network
	id := uuid.NewString()
	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-new", claims("seller", id))

	const n = 4
	done := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			_, err := v.Verify(tok)
			done <- err
		}()
	}
	close(start)
	timeout := time.After(5 * time.Second)
	for i := range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("valid token with the new kid refused: %v", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d verifications of a valid token still blocked after 5 s", n-i, n)
		}
	}
}

// TestVerifyAfterContextEnds checks that ending the context the verifier
// was built with (which stops its background refresh) does not take the
// keys already fetched with it.
func TestVerifyAfterContextEnds(t *testing.T) {
	t.Parallel()
	srv, k := standardJWKS(t)
	ctx, cancel := context.WithCancel(t.Context())
	v, err := auth.NewVerifier(ctx, auth.Options{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	id := uuid.NewString()
	accepted(t, v, sign(t, jwt.SigningMethodES256, k.ec, "ec", claims("seller", id)), store.RoleSeller, id)
}

func TestVerifiedTokenIsNotTrustedPastItsExpiry(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	id := uuid.NewString()
	c := claims("buyer", id)
	// Inside the leeway for one to two more seconds.
	exp := time.Now().Add(-auth.Leeway + 2*time.Second).Unix()
	c["exp"] = exp
	tok := hs256(t, c)
	accepted(t, v, tok, store.RoleBuyer, id)
	accepted(t, v, tok, store.RoleBuyer, id) // from the cache
	time.Sleep(time.Until(time.Unix(exp, 0).Add(auth.Leeway + 100*time.Millisecond)))
	refused(t, v, tok)
}

func TestVerifiedTokensDoNotMix(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Options{Secret: secret})
	for range 200 {
		id := uuid.NewString()
		tok := hs256(t, claims("seller", id))
		accepted(t, v, tok, store.RoleSeller, id)
		accepted(t, v, tok, store.RoleSeller, id)
		// The same claims under another signature are checked afresh. (A
		// character well inside the signature: the last one also carries
		// padding bits, which decoding ignores.)
		i := len(tok) - 10
		c := byte('A')
		if tok[i] == c {
			c = 'B'
		}
		refused(t, v, tok[:i]+string(c)+tok[i+1:])
	}
}
