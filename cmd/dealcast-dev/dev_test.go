package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/internal/store"
)

// TestDevStackDemoReadinessAndShutdown runs `dealcast dev` as a user
// would (against a Temporal server it did not start, so ports are free
// ones), then the guided demo against it; then takes the database and
// Temporal away and back, checking /readyz follows without a restart; then
// stops the stack while a request is in flight and checks that request is
// answered and the stack returns.
func TestDevStackDemoReadinessAndShutdown(t *testing.T) {
	ctx := context.Background()
	db, err := dbtest.Create(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	db.Pool.Close() // dev opens its own pool

	// The database is reached through a proxy the test can cut.
	u, _ := url.Parse(db.URL)
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	dataDir := t.TempDir()
	tsrv := startTemporal(t, dataDir)

	t.Setenv("DATABASE_URL", u.String())
	t.Setenv("TEMPORAL_ADDRESS", tsrv.FrontendAddress())
	t.Setenv("DEALCAST_HTTP_ADDR", freeAddr(t))
	t.Setenv("DEALCAST_DATA_DIR", dataDir)
	t.Setenv("DEALCAST_JWT_SECRET", "")
	t.Setenv("DEALCAST_SECRET_KEY", "")
	base := "http://" + mustEnv(t, "DEALCAST_HTTP_ADDR")

	devCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runDev(devCtx, nil) }()
	t.Cleanup(stop)
	waitReady(t, base, true)

	var out bytes.Buffer
	if err := runDemo(ctx, []string{"--api", base, "--ui", "http://127.0.0.1:8233"}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())
	tour, auctionPart, _ := strings.Cut(out.String(), "\n8. ")
	if n := strings.Count(tour, "signature verified"); n != 5 {
		t.Fatalf("demo printed %d verified deliveries before the auction, want 5", n)
	}
	if strings.Contains(out.String(), "DOES NOT VERIFY") {
		t.Error("a delivery's signature did not verify")
	}
	for _, want := range []string{"northwind got bid.outbid", "northwind got auction.closed", "contoso got invoice.issued INV-000002",
		"acme got bid.placed", "won; Contoso's invoice INV-000002 for £35.00", "/workflows/auction-"} {
		if !strings.Contains(auctionPart, want) {
			t.Errorf("the demo's auction lacks %q", want)
		}
	}
	for _, want := range []string{"deal.created v1", "deal.updated v2", "deal.updated v3", "northwind got invoice.issued INV-000001",
		"acme got invoice.issued INV-000001", "/pdf", "Contoso, not authorised, received nothing", "DealIds%3D%22"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}

	// Readiness follows the database...
	proxy.cut()
	waitReady(t, base, false)
	proxy.restore()
	waitReady(t, base, true)
	// ...and Temporal.
	if err := tsrv.Stop(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base, false)
	restartTemporal(t, dataDir, tsrv.FrontendAddress())
	waitReady(t, base, true)

	// A request in flight when the stop signal comes is served to its end.
	inflight := make(chan int, 1)
	body, feed := io.Pipe()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/sellers", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+operatorToken(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	_, _ = feed.Write([]byte(`{"name":`))
	time.Sleep(200 * time.Millisecond) // the request is on the server now
	stop()
	time.Sleep(300 * time.Millisecond) // shutdown has begun
	_, _ = feed.Write([]byte(`"Late Ltd"}`))
	feed.Close()
	select {
	case code := <-inflight:
		if code != http.StatusCreated {
			t.Fatalf("the request in flight at shutdown got %d, want 201", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request in flight at shutdown got no answer")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of its signal")
	}
}

// operatorToken mints a token with the secret dev kept in its data dir.
func operatorToken(t *testing.T) string {
	t.Helper()
	tok, err := auth.Mint(tokenSecret(t), store.RoleOperator, "ops", time.Hour, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenSecret is the HS256 secret dev uses: the environment's, or the one
// it kept in its data dir.
func tokenSecret(t *testing.T) string {
	t.Helper()
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := cfg.TokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func startTemporal(t *testing.T, dataDir string) *devtemporal.Server {
	t.Helper()
	return restartTemporal(t, dataDir, freeAddr(t))
}

func restartTemporal(t *testing.T, dataDir, addr string) *devtemporal.Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	srv, err := devtemporal.Start(context.Background(), devtemporal.Options{
		DataDir: dataDir, FrontendPort: p, SearchAttributes: delivery.SearchAttributes,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

// waitReady polls /readyz until it answers 200 (ready) or 503 (not ready).
func waitReady(t *testing.T, base string, ready bool) {
	t.Helper()
	want := http.StatusServiceUnavailable
	if ready {
		want = http.StatusOK
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within 30 s (last: %v)", want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v, ok := lookupEnv(name)
	if !ok {
		t.Fatalf("%s unset", name)
	}
	return v
}

// tcpProxy forwards connections to a target until cut.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, addr: freeAddr(t)}
	p.restore()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

var lookupEnv = os.LookupEnv
