// Command dealcast is the Dealcast service: one binary with a subcommand
// per role (api, worker, migrate, token, openapi, healthcheck). The
// development stack, the demo and the benchmark are in dealcast-dev.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dealcast/dealcast/internal/cli"
	"github.com/dealcast/dealcast/service"
)

const usage = `dealcast: the Dealcast B2B deals platform

Usage: dealcast <command> [flags]

Commands:
  api       serve the REST API
  worker    run background work (webhook delivery, housekeeping)
  migrate   apply database migrations and exit: dealcast migrate [--create-database]
  healthcheck
            container probe: exit 0 when --url (default the local /readyz)
            answers 2xx
  token     print a JWT signed with DEALCAST_JWT_SECRET:
            dealcast token --role seller --sub <id> [--ttl 1h]
  openapi   print the OpenAPI document: dealcast openapi [--version 3.1|3.0] [--yaml]

Settings come from the environment: DATABASE_URL, TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, DEALCAST_HTTP_ADDR, DEALCAST_JWT_SECRET, DEALCAST_JWKS_URL,
DEALCAST_JWT_ISSUER, DEALCAST_JWT_AUDIENCE, DEALCAST_SECRET_KEY,
DEALCAST_WEBHOOK_ALLOW_PRIVATE, DEALCAST_RATE_LIMIT_RPS, DEALCAST_INVOICE_TERMS,
DEALCAST_DATA_DIR (see README.md).
`

func main() { cli.Main("dealcast", usage, run) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return cli.ErrUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "api":
		return runProcess(ctx, "api", rest, service.Roles{API: true})
	case "worker":
		return runProcess(ctx, "worker", rest, service.Roles{Worker: true})
	case "migrate":
		return runMigrate(ctx, rest)
	case "healthcheck":
		return runHealthcheck(ctx, rest, os.Stdout)
	case "token":
		return runToken(rest, os.Stdout)
	case "openapi":
		return runOpenAPI(rest, os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return cli.ErrUsage
}
