package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/account"
	"github.com/dealcast/dealcast/internal/auth"
)

// These tests set environment variables, so none of them runs in parallel.

const tokenSecret = "token-command-test-secret"

// tokenEnv isolates runToken from the caller's environment: only secret
// (possibly empty) is set, and the data directory is a fresh one.
func tokenEnv(t *testing.T, secret string) (dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	t.Setenv("DEALCAST_JWT_SECRET", secret)
	t.Setenv("DEALCAST_JWT_ISSUER", "")
	t.Setenv("DEALCAST_JWT_AUDIENCE", "")
	t.Setenv("DEALCAST_JWKS_URL", "")
	t.Setenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE", "")
	t.Setenv("DEALCAST_DATA_DIR", dataDir)
	return dataDir
}

// mint runs the token command and returns the token it printed.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := runToken(args, &out); err != nil {
		t.Fatalf("token %v: %v", args, err)
	}
	s := out.String()
	tok := strings.TrimSuffix(s, "\n")
	if tok == s || strings.ContainsAny(tok, " \n\r\t") || strings.Count(tok, ".") != 2 {
		t.Fatalf("output %q is not one token on one line", s)
	}
	return tok
}

func verify(t *testing.T, o auth.Options, tok string) auth.Principal {
	t.Helper()
	v, err := auth.NewVerifier(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	return p
}

// registered reads the registered claims of tok without checking it.
func registered(t *testing.T, tok string) jwt.RegisteredClaims {
	t.Helper()
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenCommand(t *testing.T) {
	tokenEnv(t, tokenSecret)
	for _, tc := range []struct {
		role account.Role
		sub  string
	}{
		{account.RoleSeller, uuid.NewString()},
		{account.RoleBuyer, uuid.NewString()},
		{account.RoleOperator, "ops-alice"},
	} {
		tok := mint(t, "--role", string(tc.role), "--sub", tc.sub)
		if p := verify(t, auth.Options{Secret: tokenSecret}, tok); p != (auth.Principal{Role: tc.role, Subject: tc.sub}) {
			t.Fatalf("principal %+v, want %s %s", p, tc.role, tc.sub)
		}
		c := registered(t, tok)
		if d := time.Until(c.ExpiresAt.Time); d < time.Hour-time.Minute || d > time.Hour {
			t.Fatalf("default ttl: expires in %v, want 1h", d)
		}
		if c.Issuer != "" || len(c.Audience) != 0 {
			t.Fatalf("unconfigured iss %q aud %v", c.Issuer, c.Audience)
		}
	}
	// Another secret does not verify it.
	tok := mint(t, "--role", "operator", "--sub", "ops")
	v, err := auth.NewVerifier(t.Context(), auth.Options{Secret: "another"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("token verified with another secret")
	}
}

func TestTokenCommandTTL(t *testing.T) {
	tokenEnv(t, tokenSecret)
	for _, tc := range []struct {
		flag string
		ttl  time.Duration
	}{
		{"5m", 5 * time.Minute},
		{"90s", 90 * time.Second},
		{"24h", 24 * time.Hour},
	} {
		tok := mint(t, "--role", "seller", "--sub", uuid.NewString(), "--ttl", tc.flag)
		c := registered(t, tok)
		if d := time.Until(c.ExpiresAt.Time); d < tc.ttl-time.Minute || d > tc.ttl {
			t.Fatalf("--ttl %s: expires in %v", tc.flag, d)
		}
		if c.IssuedAt == nil || time.Since(c.IssuedAt.Time) > time.Minute {
			t.Fatalf("--ttl %s: iat %v", tc.flag, c.IssuedAt)
		}
	}
}

func TestTokenCommandIssuerAndAudience(t *testing.T) {
	tokenEnv(t, tokenSecret)
	t.Setenv("DEALCAST_JWT_ISSUER", "https://dealcast.example")
	t.Setenv("DEALCAST_JWT_AUDIENCE", "dealcast-api")
	sub := uuid.NewString()
	tok := mint(t, "--role", "buyer", "--sub", sub)
	p := verify(t, auth.Options{Secret: tokenSecret, Issuer: "https://dealcast.example", Audience: "dealcast-api"}, tok)
	if !p.Is(account.RoleBuyer, sub) {
		t.Fatalf("principal %+v", p)
	}
	v, err := auth.NewVerifier(t.Context(), auth.Options{Secret: tokenSecret, Audience: "someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("token verified for another audience")
	}
}

func TestTokenCommandSecretFromDataDir(t *testing.T) {
	// Without DEALCAST_JWT_SECRET the secret dev keeps in the data
	// directory is used.
	dir := tokenEnv(t, "")
	const kept = "secret-kept-by-dev"
	if err := os.WriteFile(filepath.Join(dir, "jwt-secret"), []byte(kept+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := mint(t, "--role", "operator", "--sub", "ops")
	verify(t, auth.Options{Secret: kept}, tok)

	// The environment wins over the file.
	t.Setenv("DEALCAST_JWT_SECRET", tokenSecret)
	verify(t, auth.Options{Secret: tokenSecret}, mint(t, "--role", "operator", "--sub", "ops"))
}

func TestTokenCommandWithoutSecret(t *testing.T) {
	tokenEnv(t, "")
	var out bytes.Buffer
	err := runToken([]string{"--role", "operator", "--sub", "ops"}, &out)
	if err == nil || !strings.Contains(err.Error(), "DEALCAST_JWT_SECRET") {
		t.Fatalf("error %v, want one naming DEALCAST_JWT_SECRET", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q", out.String())
	}
}

func TestTokenCommandErrors(t *testing.T) {
	tokenEnv(t, tokenSecret)
	id := uuid.NewString()
	for _, args := range [][]string{
		{"--role", "admin", "--sub", id},
		{"--role", "Seller", "--sub", id},
		{"--role", "", "--sub", id},
		{"--sub", id},
		{"--role", "seller"},
		{"--role", "seller", "--sub", ""},
		{"--role", "seller", "--sub", id, "--ttl", "0s"},
		{"--role", "seller", "--sub", id, "--ttl", "-1h"},
		{"--role", "seller", "--sub", id, "--ttl", "forever"},
		{"--role", "seller", "--sub", id, "--scope", "all"},
	} {
		var out bytes.Buffer
		if err := runToken(args, &out); err == nil {
			t.Errorf("token %q: no error", args)
		}
		if out.Len() != 0 {
			t.Errorf("token %q printed %q", args, out.String())
		}
	}
}
