package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
)

// runHealthcheck is the container health probe. The image has no shell and
// no curl, so compose and orchestrators call the binary itself:
//
//	dealcast healthcheck [--url http://127.0.0.1:8080/readyz]
//	dealcast healthcheck --deps
//
// The first form succeeds when the URL answers 2xx (the API's own probes);
// the second when the database and the Temporal frontend of the
// environment's settings answer (the worker, which serves no HTTP).
func runHealthcheck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL that must answer 2xx")
	deps := fs.Bool("deps", false, "check DATABASE_URL and TEMPORAL_ADDRESS instead of a URL")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *deps {
		return checkDeps(ctx, out)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s: %s", *url, resp.Status, body)
	}
	_, err = fmt.Fprintf(out, "%s: %s\n", *url, resp.Status)
	return err
}

// checkDeps pings the database and the Temporal frontend.
func checkDeps(ctx context.Context, out io.Writer) error {
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if cfg.TemporalAddress == "" {
		return errors.New("set TEMPORAL_ADDRESS (host:port of the Temporal frontend)")
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logger: quietLogger{}})
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	_, err = fmt.Fprintln(out, "database and temporal: ok")
	return err
}

// quietLogger drops the Temporal SDK's log lines, which would otherwise
// fill the container's health log on every probe.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
