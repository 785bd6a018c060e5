package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/database"
)

// Pgbench runs PostgreSQL's own benchmark on a scratch database of the
// same server: the limit the API's rates are divided by.
type Pgbench struct {
	bin, conninfo, dbURL string
	hotScript            string // the hot-row update, for -f
}

// Baseline is one pgbench run.
type Baseline struct {
	Mode      string  `json:"mode"` // -S (select only), -N (no branch/teller updates) or hot_row
	Clients   int     `json:"clients"`
	Jobs      int     `json:"jobs"`
	Seconds   int     `json:"seconds"`
	TPS       float64 `json:"tps"`
	LatencyMs float64 `json:"latency_avg_ms"`
	Command   string  `json:"command"`
	// MachineCPUUs is the machine's busy CPU per transaction: backend,
	// pgbench's client and the kernel.
	MachineCPUUs float64 `json:"machine_cpu_us_per_tx"`
}

// hotRow is hot_auction's yardstick: every transaction updates one row.
const hotRow = "UPDATE hot_row SET v = v + 1 WHERE id = 1;\n"

// newPgbench creates and initialises (pgbench -i) a scratch database, with
// the one-row table of the hot-row script.
func newPgbench(ctx context.Context, base string) (*Pgbench, error) {
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		return nil, errors.New("pgbench not found in PATH (install postgresql-client)")
	}
	dbURL, err := databaseURL(base, "dealcast_bench_pgbench_"+randomHex(4), 0)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(dbURL)
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	p := &Pgbench{bin: bin, conninfo: u.String(), dbURL: dbURL}
	if err := database.Ensure(ctx, dbURL); err != nil {
		return nil, fmt.Errorf("create the pgbench database: %w", err)
	}
	if out, err := exec.CommandContext(ctx, bin, "-i", "-q", p.conninfo).CombinedOutput(); err != nil {
		p.Close()
		return nil, fmt.Errorf("pgbench -i: %w: %s", err, tail(out))
	}
	if err := p.exec(ctx, `CREATE TABLE hot_row (id INT PRIMARY KEY, v BIGINT NOT NULL); INSERT INTO hot_row VALUES (1, 0)`); err != nil {
		p.Close()
		return nil, fmt.Errorf("the hot row: %w", err)
	}
	f, err := os.CreateTemp("", "dealcast-bench-hot-*.sql")
	if err != nil {
		p.Close()
		return nil, err
	}
	_, err = f.WriteString(hotRow)
	p.hotScript = f.Name()
	if err = errors.Join(err, f.Close()); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pgbench) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Run runs pgbench mode (-S, -N or hot_row) with prepared statements for d.
func (p *Pgbench) Run(ctx context.Context, mode string, clients, jobs int, d time.Duration) (Baseline, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	script, shown := []string{mode}, mode
	if mode == "hot_row" {
		script, shown = []string{"-f", p.hotScript}, "-f hot_row.sql"
	}
	args := append(script, "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(jobs), "-T", strconv.Itoa(secs), p.conninfo)
	b := Baseline{Mode: mode, Clients: clients, Jobs: jobs, Seconds: secs, Command: "pgbench " + shown + " " + strings.Join(args[len(script):len(args)-1], " ")}
	// Other clients of a shared server may hold the connection slots for
	// a moment: try again rather than lose the baseline.
	for attempt := 1; ; attempt++ {
		out, err := exec.CommandContext(ctx, p.bin, args...).CombinedOutput()
		if err == nil {
			b.TPS, b.LatencyMs, err = parsePgbench(out)
			return b, err
		}
		if attempt == 5 || !bytes.Contains(out, []byte("too many clients")) {
			return b, fmt.Errorf("pgbench %s: %w: %s", mode, err, tail(out))
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

var (
	tpsLine     = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	latencyLine = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// parsePgbench reads the tps without connection set-up (the last tps
// line: before version 14 pgbench printed one with it first) and the
// average latency.
func parsePgbench(out []byte) (tps, latencyMs float64, err error) {
	all := tpsLine.FindAllSubmatch(out, -1)
	if all == nil {
		return 0, 0, fmt.Errorf("no tps in pgbench output: %s", tail(out))
	}
	if tps, err = strconv.ParseFloat(string(all[len(all)-1][1]), 64); err != nil {
		return 0, 0, err
	}
	if m := latencyLine.FindSubmatch(out); m != nil {
		latencyMs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return tps, latencyMs, nil
}

// Close drops the scratch database.
func (p *Pgbench) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = database.Drop(ctx, p.dbURL)
	if p.hotScript != "" {
		_ = os.Remove(p.hotScript)
	}
}

func tail(out []byte) string {
	out = bytes.TrimSpace(out)
	return string(out[max(len(out)-500, 0):])
}
