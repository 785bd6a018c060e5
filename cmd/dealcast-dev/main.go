// Command dealcast-dev holds Dealcast's development and measurement
// tools: the one-process stack with an embedded Temporal server and Web
// UI, the guided demo, the benchmark and the fault run. None of it ships in the product
// binary, cmd/dealcast.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dealcast/dealcast/internal/cli"
)

const usage = `dealcast-dev: Dealcast's development tools

Usage: dealcast-dev <command> [flags]

Commands:
  dev       everything in one process for local work: creates the database if
            missing, migrates, starts an embedded Temporal server and its Web UI
            (unless TEMPORAL_ADDRESS is set), then serves the API and runs the worker:
            dealcast-dev dev [--temporal-port 7233] [--ui-port 8233]
  demo      a guided tour against a running dev stack: dealcast-dev demo [--api URL]
  bench     run the performance benchmark: dealcast-dev bench [-tiny] [-seconds N] (see -h)
  temporal  only the embedded Temporal server, no UI, until stopped:
            dealcast-dev temporal [--port 7233] [--data-dir ./.data]
  chaos     a fault run against separate api, worker and Temporal processes on
            this machine (kills, restarts, a PostgreSQL restart, failing
            receivers) under deal and trading load; counts lost and duplicate
            webhooks and checks sales, invoices, auctions and bids:
            dealcast-dev chaos [--short] [--out chaos/results.json]

Settings come from the same environment as dealcast's (see README.md).
`

func main() { cli.Main("dealcast-dev", usage, run) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return cli.ErrUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest)
	case "demo":
		return runDemo(ctx, rest, os.Stdout)
	case "bench":
		return runBench(ctx, rest)
	case "temporal":
		return runTemporal(ctx, rest)
	case "chaos":
		return runChaos(ctx, rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return cli.ErrUsage
}
