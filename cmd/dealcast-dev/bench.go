package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/dealcast/dealcast/bench"
	"github.com/dealcast/dealcast/service"
)

// runBench runs the performance benchmark (package bench), writes its
// results as JSON and prints each goal against its result.
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	envInt := func(name string) int { n, _ := strconv.Atoi(os.Getenv(name)); return n }
	var (
		out        = fs.String("out", "bench/results/latest.json", "where to write the results as JSON (empty: nowhere)")
		tiny       = fs.Bool("tiny", false, "toy sizes: a smoke run of every scenario")
		seconds    = fs.Int("seconds", envInt("BENCH_SECONDS"), "length of each measured phase (default 30; BENCH_SECONDS)")
		scenarios  = fs.String("scenarios", os.Getenv("BENCH_SCENARIOS"), "comma-separated scenarios to run (default all; BENCH_SCENARIOS): "+strings.Join(bench.ScenarioNames(), ","))
		cpuProfile = fs.String("cpuprofile", os.Getenv("BENCH_CPUPROFILE"), "a CPU profile of the whole run, split by pprof labels part=api, delivery, temporal-server, receiver (BENCH_CPUPROFILE)")
		pool       = fs.Int("pool-max-conns", envInt("BENCH_POOL_MAX_CONNS"), "the service's database pool size (default 16; BENCH_POOL_MAX_CONNS)")
		readConns  = fs.Int("read-conns", 0, "read: connections (default 64)")
		writeConns = fs.Int("write-conns", 0, "write: connections (default 64)")
		pgClients  = fs.Int("pgbench-clients", 0, "pgbench -c for the baselines (default 64)")
		listDeals  = fs.Int("list-deals", 0, "list: deals (default 100000)")
		concConns  = fs.Int("concurrency-conns", 0, "concurrency: open connections (default 2000)")
		concRate   = fs.Int("concurrency-rate", 0, "concurrency: requests per second (default 3000)")
		whRate     = fs.Int("webhook-rate", 0, "webhook_latency: changes per second (default 20)")
		tpBuyers   = fs.Int("throughput-buyers", 0, "webhook_throughput: buyers (default 50)")
		tpSteps    = fs.Int("throughput-steps", 0, "webhook_throughput: most steps (default 8)")
		fanBuyers  = fs.Int("fanout-buyers", 0, "fanout: buyers (default 10000)")
		bidders    = fs.Int("auction-bidders", 0, "hot_auction: buyers bidding (default 64)")
		closes     = fs.Int("auction-closes", 0, "auction_close: auctions closing in the same second (default 200)")
		grace      = fs.Duration("grace", 0, "how long to wait for late deliveries (default 30s)")
	)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: dealcast-dev bench [flags]

Starts the service in this process on a fresh database on the PostgreSQL
server of DATABASE_URL (created and dropped), runs the scenarios and
writes the results. Needs pgbench for the read and write baselines.

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
	if v := os.Getenv("DATABASE_URL"); v != "" {
		cfg.DatabaseURL = v
	}
	for _, f := range []struct{ dst, v *int }{
		{&cfg.Seconds, seconds}, {&cfg.PoolMaxConns, pool}, {&cfg.ReadConns, readConns}, {&cfg.WriteConns, writeConns},
		{&cfg.PgbenchClients, pgClients}, {&cfg.ListDeals, listDeals}, {&cfg.ConcurrencyConns, concConns},
		{&cfg.ConcurrencyRate, concRate}, {&cfg.LatencyRate, whRate}, {&cfg.ThroughputBuyers, tpBuyers},
		{&cfg.ThroughputSteps, tpSteps}, {&cfg.FanoutBuyers, fanBuyers}, {&cfg.AuctionBidders, bidders}, {&cfg.AuctionCloses, closes},
	} {
		if *f.v > 0 {
			*f.dst = *f.v
		}
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Only = append(cfg.Only, s)
		}
	}
	if *grace > 0 {
		cfg.Grace = *grace
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			defer f.Close()
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
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
	return runErr
}
