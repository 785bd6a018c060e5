package bench

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dealcast/dealcast/internal/cpuclock"
	"github.com/dealcast/dealcast/internal/webhook"
)

// PostFloor is the least one webhook delivery's HTTP exchange costs this
// machine: net/http's client POSTs an event's payload, signed with
// Standard Webhooks headers, to a receiver that reads it and answers 204,
// in a closed loop over one keep-alive connection per endpoint. No
// Temporal, no database, no JSON and no bookkeeping on either side.
//
// The same exchanges sent as deliveries arrive, a burst of one POST per
// endpoint for each change at BurstChangesPerS, cost more each: between
// bursts the goroutines and connections go idle and must be woken.
type PostFloor struct {
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	RPS          float64 `json:"rps"`
	BodyBytes    int     `json:"body_bytes"`
	Conns        int     `json:"conns"`
	MachineCPUUs float64 `json:"machine_cpu_us_per_request"`

	BurstChangesPerS  int     `json:"burst_changes_per_s"`
	BurstRequests     int     `json:"burst_requests"`
	BurstErrors       int     `json:"burst_errors"`
	BurstMachineCPUUs float64 `json:"burst_machine_cpu_us_per_request"` // idle taken out
	BurstIdleCPUS     float64 `json:"burst_idle_cpu_s"`                 // what was taken out
}

// burstChangesPerS is the change rate of the POST floor's bursts: one that
// every machine so far kept up with in webhook_throughput.
const burstChangesPerS = 32

// postFloor measures PostFloor against the receivers' endpoints 0..n-1
// with the payload of the newest event in the database.
func (r *runner) postFloor(ctx context.Context, recv *Receivers, n int, d time.Duration) (*PostFloor, error) {
	var body []byte
	if err := r.st.pool.QueryRow(ctx, `SELECT payload::TEXT FROM events ORDER BY created_at DESC LIMIT 1`).Scan(&body); err != nil {
		return nil, err
	}
	urls := recv.URLs(n)
	for i, u := range urls {
		urls[i] = strings.Replace(u, "/e/", "/floor/", 1)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	key := []byte("bench-post-floor-signing-key-32b")
	send := func(ctx context.Context, w int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, urls[w%len(urls)], bytes.NewReader(body))
		if err != nil {
			return err
		}
		ts := time.Now()
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", "evt_floor")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set("webhook-signature", webhook.Sign("evt_floor", ts, body, key))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return &StatusError{Code: resp.StatusCode}
		}
		return nil
	}
	// Warm: one connection per endpoint.
	var warm Tally
	closedLoop(ctx, n, 200*time.Millisecond, &warm, send)
	var t Tally
	busy := cpuclock.MachineBusy()
	elapsed := closedLoop(ctx, n, d, &t, send)
	busy = cpuclock.MachineBusy() - busy
	_, errs := t.Errors()
	f := &PostFloor{Requests: t.Requests(), Errors: errs, RPS: round(perSecond(t.Requests()-errs, elapsed)), BodyBytes: len(body), Conns: n}
	if f.Requests > 0 {
		f.MachineCPUUs = round(busy / float64(f.Requests) * 1e6)
	}

	// Bursts leave the machine mostly idle, so its background would weigh
	// on each request: measured for a second first, and taken out.
	idleRate, _ := idleRates(time.Second)
	var bursts Tally // one entry per POST
	busy = cpuclock.MachineBusy()
	elapsed = openLoop(ctx, burstChangesPerS, d, &Tally{}, func(ctx context.Context, _ int) error {
		var wg sync.WaitGroup
		for w := range n {
			wg.Go(func() {
				start := time.Now()
				err := send(ctx, w)
				bursts.record(time.Since(start), err)
			})
		}
		wg.Wait()
		return nil
	})
	busy = lessIdle(cpuclock.MachineBusy()-busy, idleRate*elapsed.Seconds())
	f.BurstChangesPerS, f.BurstRequests = burstChangesPerS, bursts.Requests()
	f.BurstIdleCPUS = round(idleRate * elapsed.Seconds())
	_, f.BurstErrors = bursts.Errors()
	if f.BurstRequests > 0 && busy > 0 {
		f.BurstMachineCPUUs = round(busy / float64(f.BurstRequests) * 1e6)
	}
	return f, nil
}
