package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck is the container health probe: the image has no shell and
// no curl, so compose (and anything else that probes by running a command)
// calls the binary itself:
//
//	dealcast healthcheck [--url http://127.0.0.1:8080/readyz] [--timeout 5s]
//
// It succeeds when the URL answers 2xx. The api and the worker both serve
// /readyz (the database and Temporal answer) and /healthz on DEALCAST_HTTP_ADDR.
func runHealthcheck(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL that must answer 2xx")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
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
