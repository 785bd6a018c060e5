package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/service"
)

// runDev is the one-process development stack: database, embedded
// Temporal with its UI (unless TEMPORAL_ADDRESS is set), worker and API.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	temporalPort := fs.Int("temporal-port", devtemporal.DefaultFrontendPort, "the embedded Temporal server's frontend port")
	uiPort := fs.Int("ui-port", devtemporal.DefaultUIPort, "the Temporal Web UI's port (0 for none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := service.NewLogger(true)
	slog.SetDefault(log)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if os.Getenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE") == "" {
		cfg.WebhookAllowPrivate = true
		log.Warn("dev: webhook URLs may use plain http and private addresses (DEALCAST_WEBHOOK_ALLOW_PRIVATE=true); never in production")
	}
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		if cfg.JWTSecret, err = devFile(cfg.DevJWTSecretPath(), randomKey); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "dev: DEALCAST_JWT_SECRET=%s (kept in %s)\n", cfg.JWTSecret, cfg.DevJWTSecretPath())
	}
	if cfg.SecretKey == "" {
		if cfg.SecretKey, err = devFile(filepath.Join(cfg.DataDir, "secret-key"), randomKey); err != nil {
			return err
		}
	}
	if _, err := database.Prepare(ctx, cfg.DatabaseURL, true); err != nil {
		return err
	}
	uiURL := ""
	if cfg.TemporalAddress == "" {
		log.Info("dev: starting the embedded Temporal server", "data_dir", cfg.DataDir)
		srv, err := devtemporal.Start(ctx, devtemporal.Options{
			DataDir:          cfg.DataDir,
			FrontendPort:     *temporalPort,
			UIPort:           *uiPort,
			Namespace:        cfg.TemporalNamespace,
			SearchAttributes: delivery.SearchAttributes,
			Logger:           log.With("component", "temporal-server"),
		})
		if err != nil {
			return fmt.Errorf("embedded temporal: %w", err)
		}
		defer func() { _ = srv.Stop() }()
		cfg.TemporalAddress = srv.FrontendAddress()
		uiURL = srv.UIURL()
		if cfg.TemporalCompression == "" {
			// The embedded server is on loopback: compressing every call
			// would only cost CPU on both sides.
			cfg.TemporalCompression = config.CompressionNone
		}
	}
	p, err := service.Open(ctx, cfg, log, "dealcast", service.Roles{API: true, Worker: true})
	if err != nil {
		return err
	}
	defer p.Close()
	p.Banner = devBanner(cfg, uiURL)
	return p.Run(ctx)
}

// devBanner is what dev prints once the API listens.
func devBanner(cfg config.Config, uiURL string) string {
	base := "http://localhost" + cfg.HTTPAddr
	if !strings.HasPrefix(cfg.HTTPAddr, ":") {
		base = "http://" + cfg.HTTPAddr
	}
	b := fmt.Sprintf("\n  API          %s/v1\n  Docs         %s/docs\n  OpenAPI      %s/openapi.json\n", base, base, base)
	if uiURL != "" {
		b += fmt.Sprintf("  Temporal UI  %s/namespaces/%s/workflows\n", uiURL, cfg.TemporalNamespace)
	}
	return b + "\n"
}

// devFile returns the value kept in the file at path, creating it with
// make once.
func devFile(path string, make func() (string, error)) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return v, os.WriteFile(path, []byte(v+"\n"), 0o600)
}

// randomKey is base64 of 32 random bytes.
func randomKey() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw[:]), nil
}
