package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRateLimitFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want float64
		bad  bool
	}{
		{"", DefaultRateLimitRPS, false},
		{"0", 0, false},
		{"2.5", 2.5, false},
		{"1000", 1000, false},
		{"-1", 0, true},
		{"fast", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
	} {
		t.Setenv("DEALCAST_RATE_LIMIT_RPS", tc.env)
		c, err := FromEnv()
		switch {
		case tc.bad && err == nil:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q accepted as %v", tc.env, c.RateLimitRPS)
		case !tc.bad && err != nil:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q: %v", tc.env, err)
		case !tc.bad && c.RateLimitRPS != tc.want:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q gives %v, want %v", tc.env, c.RateLimitRPS, tc.want)
		}
	}
}

func TestTemporalCompressionFromEnv(t *testing.T) {
	for _, env := range []string{"", "gzip", "none"} {
		t.Setenv("TEMPORAL_GRPC_COMPRESSION", env)
		c, err := FromEnv()
		if err != nil || c.TemporalCompression != env {
			t.Errorf("TEMPORAL_GRPC_COMPRESSION=%q gives %q, %v", env, c.TemporalCompression, err)
		}
	}
	for _, env := range []string{"GZIP", "zstd", "off"} {
		t.Setenv("TEMPORAL_GRPC_COMPRESSION", env)
		if c, err := FromEnv(); err == nil {
			t.Errorf("TEMPORAL_GRPC_COMPRESSION=%q accepted as %q", env, c.TemporalCompression)
		}
	}
}

// TestLogValueMasksSecrets: the configuration is logged at start; its
// secrets must not be.
func TestLogValueMasksSecrets(t *testing.T) {
	c := Config{
		DatabaseURL: "postgres://dealcast:db-password-1@db.internal:26257/dealcast?sslmode=verify-full",
		JWTSecret:   "jwt-secret-2",
		SecretKey:   "c2VhbGluZy1rZXktMy1zZWFsaW5nLWtleS0zLXNlYWw=",
		JWKSURL:     "https://idp.example/jwks.json",
		HTTPAddr:    ":8080",
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", c)
	for _, secret := range []string{"db-password-1", "jwt-secret-2", c.SecretKey} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the logged configuration contains %q: %s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), "db.internal") || !strings.Contains(buf.String(), "idp.example") {
		t.Errorf("the logged configuration lost what is not secret: %s", buf.String())
	}
}
