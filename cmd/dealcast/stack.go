package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/telemetry"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/workflows"
)

// dialTemporal connects to the Temporal frontend. A lazy client lets the
// API start and take writes while Temporal is down: events wait in the
// outbox and the sweeper starts them once it is back.
func dialTemporal(cfg config.Config, log *slog.Logger, lazy bool) (client.Client, error) {
	// Workflow starts, workflows and activities join the trace of the
	// request that caused them; SDK metrics go to /metrics.
	tracing, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return nil, err
	}
	opts := client.Options{
		HostPort:     cfg.TemporalAddress,
		Namespace:    cfg.TemporalNamespace,
		Logger:       sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		Interceptors: []interceptor.ClientInterceptor{tracing},
		MetricsHandler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			OnError: func(err error) { log.Warn("temporal sdk metric", "err", err) },
		}),
	}
	// Temporal Cloud and secured clusters: an API key, or a client
	// certificate for mTLS; either turns TLS on.
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
		opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TemporalTLSCert != "" || cfg.TemporalTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		opts.Credentials = client.NewMTLSCredentials(cert)
		opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// gzip spends CPU on both sides of every call to save bandwidth that a
	// nearby frontend does not need: operators can turn it off.
	if cfg.TemporalCompression == config.CompressionNone {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	if lazy {
		return client.NewLazyClient(opts)
	}
	return client.Dial(opts)
}

// startTelemetry sets up metrics and tracing for the process.
func startTelemetry(ctx context.Context, service string) (*telemetry.Telemetry, func(), error) {
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: service})
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	return tel, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}, nil
}

// sealer builds the webhook secret sealer from DEALCAST_SECRET_KEY.
func sealer(cfg config.Config) (*webhook.Sealer, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("set DEALCAST_SECRET_KEY (base64 of 32 random bytes) to encrypt webhook secrets")
	}
	key, err := webhook.ParseKey(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("DEALCAST_SECRET_KEY: %w", err)
	}
	return webhook.NewSealer(key)
}

// newActivities builds the delivery activities.
func newActivities(cfg config.Config, st *store.Store, s *webhook.Sealer, tel *telemetry.Telemetry) *activities.Activities {
	return &activities.Activities{
		Store:            st,
		Sender:           webhook.NewSender(webhook.ClientOptions{AllowPrivate: cfg.WebhookAllowPrivate}),
		Sealer:           s,
		Concurrency:      64,
		SpanlessAttempts: !tel.Exporting(),
	}
}

// runDelivery runs the Temporal worker and the outbox sweeper until ctx ends.
func runDelivery(ctx context.Context, c client.Client, d *delivery.Dispatcher, acts *activities.Activities, log *slog.Logger) error {
	w := delivery.NewWorker(c, workflows.TaskQueue, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.Info("worker: delivering webhooks")
	d.Sweep(ctx, 2*time.Second, 3*time.Second)
	// Stop waits for running activities (up to the worker's stop timeout),
	// so a shutdown does not cut a delivery round in half.
	w.Stop()
	return nil
}

// devFile returns the value kept in dataDir/name, creating it with make once.
func devFile(dataDir, name string, make func() (string, error)) (string, error) {
	p := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	return v, os.WriteFile(p, []byte(v+"\n"), 0o600)
}

// randomKey is base64 of 32 random bytes.
func randomKey() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw[:]), nil
}
