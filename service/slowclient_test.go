package service

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run the API's http.Server (NewHTTPServer, as ServeAPI does)
// on a loopback port, with its deadlines shortened so that slow clients
// are cut off in a fraction of a second instead of several.

// serve starts srv on a loopback port and returns its address.
func serveForTest(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedAfter reports, once, how long after start the server closed conn.
func closedAfter(conn net.Conn, start time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		out <- time.Since(start)
	}()
	return out
}

// countingHandler answers 200 and counts the requests it sees.
type countingHandler struct{ n atomic.Int32 }

func (h *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = w.Write([]byte("ok\n"))
}

func TestAPIServerHasDeadlines(t *testing.T) {
	t.Parallel()
	srv := NewHTTPServer(":8080", http.NotFoundHandler())
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 || d > 2*time.Minute {
			t.Errorf("%s is %v; want a deadline of at most 2 minutes", name, d)
		}
	}
	if srv.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("ReadHeaderTimeout %v: a client may dribble its headers for that long", srv.ReadHeaderTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
	if srv.Addr != ":8080" {
		t.Errorf("Addr %q", srv.Addr)
	}
}

// TestSlowHeadersAreCutOff is slowloris: a client sending its request
// headers one byte every 100 ms is disconnected at ReadHeaderTimeout,
// before any handler runs, while a normal client is served.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	h := &countingHandler{}
	srv := NewHTTPServer("127.0.0.1:0", h)
	srv.ReadHeaderTimeout = 300 * time.Millisecond
	addr := serveForTest(t, srv)

	conn := dial(t, addr)
	start := time.Now()
	closed := closedAfter(conn, start)
	header := "GET /healthz HTTP/1.1\r\nHost: dealcast.test\r\nX-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(header); i++ {
		select {
		case d := <-closed:
			if d > 2*time.Second {
				t.Fatalf("cut off after %v, want about the 300ms ReadHeaderTimeout", d)
			}
			if n := h.n.Load(); n != 0 {
				t.Fatalf("the handler ran %d times for a request whose headers never arrived", n)
			}
			t.Logf("cut off after %v, %d of %d header bytes sent", d, i, len(header))
			// The server still serves everyone else.
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || h.n.Load() != 1 {
				t.Fatalf("a normal request afterwards: %d, handler ran %d times", resp.StatusCode, h.n.Load())
			}
			return
		case <-tick.C:
		}
		_, _ = conn.Write([]byte{header[i]}) // fails once the server has closed; the read side reports it
	}
	t.Fatalf("the server accepted headers sent over %v", time.Since(start))
}

// TestSlowBodyIsCutOff: a client that sends its headers at once and then
// its body one byte every 100 ms is cut off at ReadTimeout; the handler's
// read fails with a timeout instead of waiting for it.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, 1)
	srv := NewHTTPServer("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, err := io.ReadAll(r.Body)
		results <- result{err, time.Since(start)}
	}))
	srv.ReadHeaderTimeout = 300 * time.Millisecond
	srv.ReadTimeout = 600 * time.Millisecond
	addr := serveForTest(t, srv)

	conn := dial(t, addr)
	closed := closedAfter(conn, time.Now())
	if _, err := conn.Write([]byte("POST /v1/deals HTTP/1.1\r\nHost: dealcast.test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-results:
			var ne net.Error
			if r.err == nil || !errors.As(r.err, &ne) || !ne.Timeout() {
				t.Fatalf("the handler's body read ended with %v, want a timeout", r.err)
			}
			if r.took > 2*time.Second {
				t.Fatalf("the handler waited %v for the body", r.took)
			}
			select {
			case <-closed:
			case <-time.After(2 * time.Second):
				t.Fatal("the connection stayed open")
			}
			return
		case <-deadline:
			t.Fatal("the handler was still reading the body after 5 s")
		case <-tick.C:
			_, _ = conn.Write([]byte("{"))
		}
	}
}

// TestSlowResponseReaderIsCutOff: a client that never reads its response
// holds the handler only until WriteTimeout: its writes then fail.
func TestSlowResponseReaderIsCutOff(t *testing.T) {
	t.Parallel()
	type result struct {
		err     error
		written int64
		took    time.Duration
	}
	results := make(chan result, 1)
	srv := NewHTTPServer("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		chunk := make([]byte, 32<<10)
		var n int64
		var err error
		for n < 256<<20 && err == nil {
			var m int
			m, err = w.Write(chunk)
			n += int64(m)
		}
		results <- result{err, n, time.Since(start)}
	}))
	srv.WriteTimeout = 500 * time.Millisecond
	addr := serveForTest(t, srv)

	conn := dial(t, addr)
	if _, err := conn.Write([]byte("GET /v1/deals HTTP/1.1\r\nHost: dealcast.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if r.err == nil {
			t.Fatalf("the handler wrote %d bytes to a client that reads nothing", r.written)
		}
		if r.took > 3*time.Second {
			t.Fatalf("the handler was held for %v", r.took)
		}
		t.Logf("writes failed after %v and %d bytes: %v", r.took, r.written, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was still writing after 10 s")
	}
}

// rawStatus sends a raw request and returns the status line's code.
func rawStatus(t *testing.T, addr, request string) string {
	t.Helper()
	conn := dial(t, addr)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		t.Fatalf("status line %q", line)
	}
	return fields[1]
}

// TestMalformedHeadersNeverReachTheAPI: header values with NUL or bare
// control characters, and headers beyond MaxHeaderBytes, are refused by
// the server itself.
func TestMalformedHeadersNeverReachTheAPI(t *testing.T) {
	t.Parallel()
	h := &countingHandler{}
	addr := serveForTest(t, NewHTTPServer("127.0.0.1:0", h))
	for name, tc := range map[string]struct{ request, status string }{
		"NUL in a value":       {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer a\x00b\r\n\r\n", "400"},
		"NUL in a name":        {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nX-A\x00b: 1\r\n\r\n", "400"},
		"bare CR in a value":   {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nIdempotency-Key: a\rb\r\n\r\n", "400"},
		"DEL in a value":       {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nIf-Match: \"1\x7f\"\r\n\r\n", "400"},
		"NUL in the path":      {"GET /v1/deals/\x00 HTTP/1.1\r\nHost: d\r\n\r\n", "400"},
		"headers over 64 KiB":  {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nX-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", "431"},
		"a well-formed header": {"GET /v1/deals HTTP/1.1\r\nHost: d\r\nX-Fine: yes\r\n\r\n", "200"},
	} {
		if got := rawStatus(t, addr, tc.request); got != tc.status {
			t.Errorf("%s: status %s, want %s", name, got, tc.status)
		}
	}
	if n := h.n.Load(); n != 1 {
		t.Errorf("the handler saw %d requests, want only the well-formed one", n)
	}
}
