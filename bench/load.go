package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client speaks HTTP/1.1 keep-alive to the API over loopback, with up to
// conns connections, as an outside client would.
type Client struct {
	base string
	hc   *http.Client
}

func newClient(base string, conns int) *Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &Client{base: base, hc: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

// Close closes the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// StatusError is an answer other than the one expected.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Code, e.Body) }

// Do sends one request and expects status want; out, if not nil, receives
// the JSON answer, or the body's bytes unparsed when it is a *[]byte. The
// body is read to the end so the connection is reused.
func (c *Client) Do(ctx context.Context, method, path, token string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		_, _ = io.Copy(io.Discard, resp.Body)
		return &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	if raw, ok := out.(*[]byte); ok {
		*raw, err = io.ReadAll(resp.Body)
		return err
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// openConnections makes n connections to the API at once, by sending n
// concurrent requests that the server holds for a moment, so that each
// needs its own connection; they stay open as idle keep-alive connections.
func (c *Client) openConnections(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	var failed atomic.Int64
	var first atomic.Value
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Do(ctx, http.MethodGet, "/bench/hold?ms=500", "", nil, http.StatusNoContent, nil); err != nil {
				failed.Add(1)
				first.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d connections failed, first: %v", n, first.Load())
	}
	return nil
}

// Tally counts the outcomes of a load run.
type Tally struct {
	Latency  Sample
	requests atomic.Int64
	mu       sync.Mutex
	errs     map[string]int
	first    string
}

// record counts one request that took d and ended with err.
func (t *Tally) record(d time.Duration, err error) {
	t.requests.Add(1)
	if err == nil {
		t.Latency.Add(d)
		return
	}
	kind := errorKind(err)
	t.mu.Lock()
	if t.errs == nil {
		t.errs = map[string]int{}
	}
	t.errs[kind]++
	if t.first == "" {
		t.first = err.Error()
	}
	t.mu.Unlock()
}

// Requests is every request sent; Errors those that failed, by kind.
func (t *Tally) Requests() int { return int(t.requests.Load()) }

// Errors returns the failures by kind and their total.
func (t *Tally) Errors() (map[string]int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	total := 0
	for k, v := range t.errs {
		out[k] = v
		total += v
	}
	return out, total
}

// FirstError is the text of the first failure, for the log.
func (t *Tally) FirstError() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

func errorKind(err error) string {
	var se *StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("status_%d", se.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "transport"
}

// closedLoop runs conns workers, each sending one request after another
// until d has passed, and returns how long they ran. Latency is from send
// to the end of the response.
func closedLoop(ctx context.Context, conns int, d time.Duration, t *Tally, send func(ctx context.Context, worker int) error) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	pprof.Do(ctx, pprof.Labels("part", "loadgen"), func(ctx context.Context) {
		for w := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) && ctx.Err() == nil {
					t0 := time.Now()
					err := send(ctx, w)
					t.record(time.Since(t0), err)
				}
			}()
		}
		wg.Wait()
	})
	return time.Since(start)
}

// openLoop starts requests at rate per second for d, whether or not the
// earlier ones have finished, waits for them and returns how long the run
// took. Latency is from each request's scheduled start, so a stalled
// server cannot hide its queue (no coordinated omission).
func openLoop(ctx context.Context, rate int, d time.Duration, t *Tally, send func(ctx context.Context, i int) error) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	pprof.Do(ctx, pprof.Labels("part", "loadgen"), func(ctx context.Context) {
		for i := 0; i < total && ctx.Err() == nil; i++ {
			due := start.Add(time.Duration(i) * interval)
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := send(ctx, i)
				t.record(time.Since(due), err)
			}()
		}
		wg.Wait()
	})
	return time.Since(start)
}

// sortedKinds renders error counts for the log.
func sortedKinds(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
