package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/dealcast/dealcast/bench"
	"github.com/dealcast/dealcast/service"
)

// runBench runs the performance benchmark (package bench) and writes its
// results as JSON, with a summary of the goals on the console.
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		out        = fs.String("out", "bench/results/latest.json", "where to write the results as JSON (empty: nowhere)")
		tiny       = fs.Bool("tiny", false, "toy sizes: a smoke run of every scenario")
		seconds    = fs.Int("seconds", 0, "length of each measured phase (default 30, or BENCH_SECONDS)")
		scenarios  = fs.String("scenarios", "", "comma-separated scenarios to run (default all, or BENCH_SCENARIOS)")
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile per scenario: PATH becomes PATH-<scenario> (or BENCH_CPUPROFILE)")
		memProfile = fs.String("memprofile", "", "write an allocation profile per scenario's measured phase: PATH becomes PATH-<scenario> (or BENCH_MEMPROFILE)")
		pool       = fs.Int("pool-max-conns", 0, "the service's database pool size (default 16, or BENCH_POOL_MAX_CONNS)")
		readConns  = fs.Int("read-conns", 0, "read: connections (default 64)")
		writeConns = fs.Int("write-conns", 0, "write: connections (default 64)")
		pgClients  = fs.Int("pgbench-clients", 0, "pgbench -c for the baselines (default 64)")
		listDeals  = fs.Int("list-deals", 0, "list: deals (default 100000)")
		listSell   = fs.Int("list-sellers", 0, "list: sellers authorising the buyer (default 50)")
		listLimit  = fs.Int("list-limit", 0, "list: page size (default 100)")
		concConns  = fs.Int("concurrency-conns", 0, "concurrency: open connections (default 2000)")
		concRate   = fs.Int("concurrency-rate", 0, "concurrency: requests per second (default 3000)")
		whRate     = fs.Int("webhook-rate", 0, "webhook_latency: changes per second (default 20)")
		whBuyers   = fs.Int("webhook-buyers", 0, "webhook_latency: buyers (default 10)")
		tpBuyers   = fs.Int("throughput-buyers", 0, "webhook_throughput: buyers (default 50)")
		tpStart    = fs.Int("throughput-start-rate", 0, "webhook_throughput: changes per second of the first step (default 2)")
		tpSteps    = fs.Int("throughput-steps", 0, "webhook_throughput: most steps (default 8)")
		fanBuyers  = fs.Int("fanout-buyers", 0, "fanout: buyers (default 10000)")
		grace      = fs.Duration("grace", 0, "how long to wait for late deliveries (default 30s)")
	)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: dealcast bench [flags]

Starts the service stack in this process on a fresh database on the
PostgreSQL server of DATABASE_URL (created and dropped), runs the
scenarios and writes the results. Needs pgbench for the read and write
baselines. Environment: BENCH_SECONDS, BENCH_SCENARIOS, BENCH_CPUPROFILE, BENCH_MEMPROFILE,
BENCH_POOL_MAX_CONNS, DATABASE_URL.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := bench.Default()
	if *tiny {
		cfg = bench.Tiny()
	}
	if err := cfg.ApplyEnv(); err != nil {
		return err
	}
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&cfg.Seconds, *seconds)
	set(&cfg.PoolMaxConns, *pool)
	set(&cfg.Read.Conns, *readConns)
	set(&cfg.Write.Conns, *writeConns)
	set(&cfg.Pgbench.Clients, *pgClients)
	set(&cfg.List.Deals, *listDeals)
	set(&cfg.List.Sellers, *listSell)
	set(&cfg.List.Limit, *listLimit)
	set(&cfg.Concurrency.Conns, *concConns)
	set(&cfg.Concurrency.Rate, *concRate)
	set(&cfg.WebhookLatency.Rate, *whRate)
	set(&cfg.WebhookLatency.Buyers, *whBuyers)
	set(&cfg.WebhookThroughput.Buyers, *tpBuyers)
	set(&cfg.WebhookThroughput.StartRate, *tpStart)
	set(&cfg.WebhookThroughput.MaxSteps, *tpSteps)
	set(&cfg.Fanout.Buyers, *fanBuyers)
	if *scenarios != "" {
		cfg.Only = bench.SplitList(*scenarios)
	}
	if *cpuProfile != "" {
		cfg.CPUProfile = *cpuProfile
	}
	if *memProfile != "" {
		cfg.MemProfile = *memProfile
	}
	if *grace > 0 {
		cfg.Grace = *grace
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	log := service.NewLogger(true)
	started := time.Now()
	res, runErr := bench.Run(ctx, cfg, log)
	if res == nil {
		return runErr
	}
	if *out != "" {
		if err := res.WriteJSON(*out); err != nil {
			return err
		}
		log.Info("bench: results written", "path", *out)
	}
	fmt.Print(res.Summary())
	log.Info("bench: done", "took", time.Since(started).Round(time.Second))
	if runErr != nil {
		slog.Error("bench: some scenarios failed", "err", runErr)
		return runErr
	}
	return nil
}
