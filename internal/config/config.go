// Package config reads Dealcast's settings from the environment, once, at start.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultDatabaseURL is the local PostgreSQL every development machine has.
const DefaultDatabaseURL = "postgres://root@127.0.0.1:5432/dealcast?sslmode=disable"

// DefaultRateLimitRPS is the per-caller request rate when
// DEALCAST_RATE_LIMIT_RPS is unset: generous enough for any integration
// and for the benchmarks.
const DefaultRateLimitRPS = 200

// Config is every setting of the service.
type Config struct {
	DatabaseURL     string
	TemporalAddress string
	HTTPAddr        string
	JWTSecret       string
	JWKSURL         string
	JWTIssuer       string
	JWTAudience     string
	// WebhookAllowPrivate lets webhook URLs use plain http and private,
	// loopback or link-local addresses (local development and tests).
	WebhookAllowPrivate bool
	DataDir             string
	ShutdownTimeout     time.Duration
	// TemporalNamespace is where delivery workflows run.
	TemporalNamespace string
	// TemporalAPIKey authenticates to Temporal Cloud (TLS is then on).
	TemporalAPIKey string
	// TemporalTLSCert and TemporalTLSKey are files of a client certificate
	// for mTLS to the Temporal frontend (TLS is then on).
	TemporalTLSCert string
	TemporalTLSKey  string
	// TemporalCompression is the gRPC compression of requests to the
	// Temporal frontend: "gzip" or "none". Empty means gzip, except to the
	// embedded server of dev, which is on loopback.
	TemporalCompression string
	// SecretKey (base64 of 32 bytes) encrypts webhook secrets at rest.
	SecretKey string
	// RateLimitRPS is the request rate each API caller may keep up, with
	// bursts of twice as many; zero turns rate limiting off.
	RateLimitRPS float64
	// InvoiceTerms is how long a buyer has to pay an invoice: due_at is
	// issued_at plus this.
	InvoiceTerms time.Duration
}

// DefaultInvoiceTerms is DEALCAST_INVOICE_TERMS when unset: 14 days.
const DefaultInvoiceTerms = 336 * time.Hour

// The values of TEMPORAL_GRPC_COMPRESSION.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// FromEnv reads the configuration. Defaults are those of the contract;
// dev may fill in the JWT secret afterwards.
func FromEnv() (Config, error) {
	c := Config{
		DatabaseURL:         getenv("DATABASE_URL", DefaultDatabaseURL),
		TemporalAddress:     os.Getenv("TEMPORAL_ADDRESS"),
		HTTPAddr:            getenv("DEALCAST_HTTP_ADDR", ":8080"),
		JWTSecret:           os.Getenv("DEALCAST_JWT_SECRET"),
		JWKSURL:             os.Getenv("DEALCAST_JWKS_URL"),
		JWTIssuer:           os.Getenv("DEALCAST_JWT_ISSUER"),
		JWTAudience:         os.Getenv("DEALCAST_JWT_AUDIENCE"),
		DataDir:             getenv("DEALCAST_DATA_DIR", "./.data"),
		TemporalNamespace:   getenv("TEMPORAL_NAMESPACE", "default"),
		TemporalAPIKey:      os.Getenv("TEMPORAL_API_KEY"),
		TemporalTLSCert:     os.Getenv("TEMPORAL_TLS_CERT"),
		TemporalTLSKey:      os.Getenv("TEMPORAL_TLS_KEY"),
		TemporalCompression: os.Getenv("TEMPORAL_GRPC_COMPRESSION"),
		SecretKey:           os.Getenv("DEALCAST_SECRET_KEY"),
		ShutdownTimeout:     20 * time.Second,
		RateLimitRPS:        DefaultRateLimitRPS,
		InvoiceTerms:        DefaultInvoiceTerms,
	}
	if v := os.Getenv("DEALCAST_INVOICE_TERMS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("DEALCAST_INVOICE_TERMS: %q is not a positive Go duration (for example 336h)", v)
		}
		c.InvoiceTerms = d
	}
	if v := os.Getenv("DEALCAST_RATE_LIMIT_RPS"); v != "" {
		rps, err := strconv.ParseFloat(v, 64)
		if err != nil || rps < 0 || math.IsInf(rps, 0) || math.IsNaN(rps) {
			return c, fmt.Errorf("DEALCAST_RATE_LIMIT_RPS: %q is not a rate (requests per second, 0 to turn limiting off)", v)
		}
		c.RateLimitRPS = rps
	}
	switch c.TemporalCompression {
	case "", CompressionGzip, CompressionNone:
	default:
		return c, fmt.Errorf("TEMPORAL_GRPC_COMPRESSION: %q is neither %q nor %q", c.TemporalCompression, CompressionGzip, CompressionNone)
	}
	if v := os.Getenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("DEALCAST_WEBHOOK_ALLOW_PRIVATE: %w", err)
		}
		c.WebhookAllowPrivate = b
	}
	return c, nil
}

// RequireKeys fails unless a way to verify tokens is configured.
func (c Config) RequireKeys() error {
	if c.JWTSecret == "" && c.JWKSURL == "" {
		return fmt.Errorf("set DEALCAST_JWT_SECRET (development) or DEALCAST_JWKS_URL (production)")
	}
	return nil
}

// LogValue masks secrets when the configuration is logged.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("temporal_address", c.TemporalAddress),
		slog.String("temporal_namespace", c.TemporalNamespace),
		slog.String("temporal_api_key", mask(c.TemporalAPIKey)),
		slog.String("temporal_tls_cert", c.TemporalTLSCert),
		slog.String("temporal_grpc_compression", c.TemporalCompression),
		slog.String("secret_key", mask(c.SecretKey)),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("jwt_secret", mask(c.JWTSecret)),
		slog.String("jwks_url", c.JWKSURL),
		slog.Bool("webhook_allow_private", c.WebhookAllowPrivate),
		slog.Float64("rate_limit_rps", c.RateLimitRPS),
		slog.Duration("invoice_terms", c.InvoiceTerms),
		slog.String("data_dir", c.DataDir),
	)
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// DevJWTSecretPath is where `dealcast-dev dev` keeps the JWT secret it
// made, when none is set.
func (c Config) DevJWTSecretPath() string { return filepath.Join(c.DataDir, "jwt-secret") }

// TokenSecret is DEALCAST_JWT_SECRET, or else the one `dealcast-dev dev`
// made and kept, so a second shell can mint tokens for a running dev
// stack without copying it around.
func (c Config) TokenSecret() (string, error) {
	if c.JWTSecret != "" {
		return c.JWTSecret, nil
	}
	b, err := os.ReadFile(c.DevJWTSecretPath())
	if err != nil {
		return "", errors.New("set DEALCAST_JWT_SECRET (or run dealcast-dev dev once to create one)")
	}
	return strings.TrimSpace(string(b)), nil
}
