package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// TestDevChild is the dev process TestKilledDevStackClosesEachAuctionOnce
// runs and kills: this test binary started again with DEALCAST_DEV_CHILD.
func TestDevChild(t *testing.T) {
	if os.Getenv("DEALCAST_DEV_CHILD") != "1" {
		t.Skip("run as a child process by TestKilledDevStackClosesEachAuctionOnce")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runDev(ctx, []string{"--temporal-port", os.Getenv("DEALCAST_DEV_CHILD_TEMPORAL_PORT"), "--ui-port", "0"}); err != nil {
		t.Fatal(err)
	}
}

// devProcess is one run of the dev stack in a child process.
type devProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startDevProcess(t *testing.T, env []string, logPath string) *devProcess {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDevChild$", "-test.v")
	cmd.Env = append(os.Environ(), append(env, "DEALCAST_DEV_CHILD=1")...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// kill ends the process with SIGKILL: no shutdown code of its runs.
func (p *devProcess) kill(t *testing.T) {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed dev process did not exit")
	}
}

// devAPI calls the child's API.
type devAPI struct {
	t    *testing.T
	base string
}

func (a devAPI) call(method, path, token string, body any, want int, out any, headers ...string) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatal(err)
		}
	}
}

func (a devAPI) token(secret string, role store.Role, sub string) string {
	tok, err := auth.Mint(secret, role, sub, time.Hour, auth.MintOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return tok
}

// The whole dev process (API, worker, dispatcher and the embedded
// Temporal server) is killed with SIGKILL around the close of several
// auctions (one closed a moment before, some within milliseconds of the
// kill, one due while the process is down) and started again: each
// auction ends closed exactly once, with one invoice, invoice numbers
// without gaps, and the winner's invoice.issued delivered.
func TestKilledDevStackClosesEachAuctionOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the dev stack twice")
	}
	ctx := context.Background()
	db, err := dbtest.Create(ctx, "devkill")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	const secret = "kill-test-secret"
	dataDir := t.TempDir()
	httpAddr, temporalAddr := freeAddr(t), freeAddr(t)
	_, temporalPort, _ := net.SplitHostPort(temporalAddr)
	env := []string{"DATABASE_URL=" + db.URL, "DEALCAST_HTTP_ADDR=" + httpAddr, "DEALCAST_DATA_DIR=" + dataDir,
		"DEALCAST_JWT_SECRET=" + secret, "TEMPORAL_ADDRESS=", "DEALCAST_DEV_CHILD_TEMPORAL_PORT=" + temporalPort}
	logPath := filepath.Join(t.TempDir(), "dev.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("dev log:\n%s", b)
		}
	})
	base := "http://" + httpAddr
	proc := startDevProcess(t, env, logPath)
	waitReady(t, base, true)

	api := devAPI{t: t, base: base}
	ops := api.token(secret, store.RoleOperator, "ops")
	var seller, buyer struct{ ID string }
	api.call(http.MethodPost, "/v1/sellers", ops, map[string]string{"name": "S"}, http.StatusCreated, &seller)
	api.call(http.MethodPost, "/v1/buyers", ops, map[string]string{"name": "B"}, http.StatusCreated, &buyer)
	sellerTok, buyerTok := api.token(secret, store.RoleSeller, seller.ID), api.token(secret, store.RoleBuyer, buyer.ID)
	api.call(http.MethodPut, "/v1/sellers/"+seller.ID+"/buyers/"+buyer.ID, sellerTok, nil, http.StatusNoContent, nil)
	receiver := webhooktest.NewReceiver(t)
	var endpoint struct{ Secret string }
	api.call(http.MethodPost, "/v1/webhook-endpoints", buyerTok,
		map[string]any{"url": receiver.URL(), "event_types": []string{"invoice.issued"}}, http.StatusCreated, &endpoint)

	kill := time.Now().Add(8 * time.Second)
	offsets := []time.Duration{-1500 * time.Millisecond, -40 * time.Millisecond, -15 * time.Millisecond,
		0, 15 * time.Millisecond, 40 * time.Millisecond, 1500 * time.Millisecond}
	ids := make([]string, len(offsets))
	for i, off := range offsets {
		var d, a struct{ ID string }
		api.call(http.MethodPost, "/v1/deals", sellerTok, map[string]any{"name": "Lot", "currency": "eur", "total_price": 5000,
			"items": []map[string]any{{"id": "i", "name": "Item", "price": 5000}}}, http.StatusCreated, &d)
		api.call(http.MethodPost, "/v1/deals/"+d.ID+"/auctions", sellerTok, map[string]any{"start_price": 1000, "min_increment": 100,
			"closes_at": kill.Add(off).UTC().Format(time.RFC3339Nano)}, http.StatusCreated, &a)
		api.call(http.MethodPost, "/v1/auctions/"+a.ID+"/bids", buyerTok, map[string]any{"amount": 1000 + int64(i)},
			http.StatusCreated, nil, "Idempotency-Key", uuid.NewString())
		ids[i] = a.ID
	}
	time.Sleep(time.Until(kill))
	proc.kill(t)
	time.Sleep(time.Until(kill.Add(2 * time.Second))) // the last one falls due while the process is down
	startDevProcess(t, env, logPath)
	waitReady(t, base, true)

	c, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var st auction.Status
		err := c.GetWorkflow(wctx, auction.WorkflowID(id), "").Get(wctx, &st)
		cancel()
		if err != nil || st != auction.StatusClosed {
			t.Fatalf("auction %d (closes_at %v from the kill): workflow %q, %v", i, offsets[i], st, err)
		}
		var status, outcome string
		var invoices, closedEvents int
		var lag time.Duration
		if err := db.Pool.QueryRow(ctx, `
			SELECT status, outcome, updated_at - closes_at,
			       (SELECT count(*) FROM invoices WHERE auction_id = a.id),
			       (SELECT count(*) FROM events WHERE type = 'auction.closed' AND payload->'data'->'auction'->>'id' = a.id::TEXT)
			FROM auctions a WHERE id = $1`, id).Scan(&status, &outcome, &lag, &invoices, &closedEvents); err != nil {
			t.Fatal(err)
		}
		t.Logf("auction %d, closes_at %v from the kill: closed %v after closes_at", i, offsets[i], lag.Round(time.Millisecond))
		// auction.closed is written as two copies: the buyers' and the seller's.
		if status != "closed" || outcome != "won" || invoices != 1 || closedEvents != 2 {
			t.Errorf("auction %d: %s/%s with %d invoices and %d auction.closed events; want closed/won, 1 and 2",
				i, status, outcome, invoices, closedEvents)
		}
	}
	var numbers, maxNumber int
	if err := db.Pool.QueryRow(ctx, `SELECT count(DISTINCT number), coalesce(max(number), 0) FROM invoices WHERE seller_id = $1`,
		seller.ID).Scan(&numbers, &maxNumber); err != nil {
		t.Fatal(err)
	}
	if numbers != len(ids) || maxNumber != len(ids) {
		t.Errorf("%d distinct invoice numbers up to %d, want 1..%d", numbers, maxNumber, len(ids))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := map[string]bool{}
		for _, a := range receiver.Arrivals() {
			if !webhooktest.Verify(endpoint.Secret, a) {
				t.Fatalf("a delivery does not verify: %s", a.Body)
			}
			seen[a.Header.Get("webhook-id")] = true
		}
		if len(seen) == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the winner got %d distinct invoice.issued, want %d", len(seen), len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
