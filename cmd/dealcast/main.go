// Command dealcast is the Dealcast service: one binary with a subcommand
// per role (dev, api, worker, migrate, token, openapi).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `dealcast: the Dealcast B2B deals platform

Usage: dealcast <command> [flags]

Commands:
  dev       everything in one process for local work: creates the database if
            missing, migrates, then serves the API (and runs the worker)
  api       serve the REST API
  worker    run background work (webhook delivery, housekeeping)
  migrate   apply database migrations and exit
  healthcheck
            container probe: exit 0 when --url (default the local /readyz)
            answers 2xx
  token     print a development JWT: dealcast token --role seller --sub <id> [--ttl 1h]
  openapi   print the OpenAPI document: dealcast openapi [--version 3.1|3.0] [--yaml]
  demo      a guided tour against a running dev stack: dealcast demo [--api URL]
  bench     run the performance benchmark: dealcast bench [-tiny] [-seconds N] (see -h)

Settings come from the environment: DATABASE_URL, TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, DEALCAST_HTTP_ADDR, DEALCAST_JWT_SECRET, DEALCAST_JWKS_URL,
DEALCAST_JWT_ISSUER, DEALCAST_JWT_AUDIENCE, DEALCAST_SECRET_KEY,
DEALCAST_WEBHOOK_ALLOW_PRIVATE, DEALCAST_DATA_DIR (see README.md).
`

func main() {
	useGCDefault(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		slog.Error("dealcast failed", "err", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// defaultGCPercent is the collector's target when GOGC is not set: the heap
// may grow to five times what is live between collections instead of
// twice. Delivery allocates fast and keeps little (requests, protobuf
// messages, rows), and at Go's default the collector's marking was about a
// tenth of the process; at 400 a webhook_throughput step costs the machine
// about a tenth less CPU per change, for about 150 MB more memory in the
// whole `dev` stack (docs/performance.md). GOMEMLIMIT still bounds the heap: the
// container manifests set it below their memory limit.
const defaultGCPercent = 400

// useGCDefault applies defaultGCPercent unless the environment sets GOGC,
// which the runtime has already read; it reports whether it did.
func useGCDefault(lookup func(string) (string, bool)) bool {
	if _, set := lookup("GOGC"); set {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest)
	case "api":
		return runAPI(ctx, rest)
	case "worker":
		return runWorker(ctx, rest)
	case "migrate":
		return runMigrate(ctx, rest)
	case "healthcheck":
		return runHealthcheck(ctx, rest, os.Stdout)
	case "token":
		return runToken(rest, os.Stdout)
	case "openapi":
		return runOpenAPI(rest, os.Stdout)
	case "demo":
		return runDemo(ctx, rest, os.Stdout)
	case "bench":
		return runBench(ctx, rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return errUsage
}
