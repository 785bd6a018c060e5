package bench

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
)

// PostFloor is the least one webhook delivery's HTTP exchange costs this
// machine: net/http's client POSTs an event's payload, signed with
// Standard Webhooks headers, to a receiver that reads it and answers 204,
// in a closed loop over one keep-alive connection per endpoint. No
// Temporal, no database, no JSON and no bookkeeping on either side.
type PostFloor struct {
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	RPS          float64 `json:"rps"`
	BodyBytes    int     `json:"body_bytes"`
	Conns        int     `json:"conns"`
	MachineCPUUs float64 `json:"machine_cpu_us_per_request"`
}

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
	busy := machineBusy()
	elapsed := closedLoop(ctx, n, d, &t, send)
	busy = machineBusy() - busy
	_, errs := t.Errors()
	f := &PostFloor{Requests: t.Requests(), Errors: errs, RPS: round(perSecond(t.Requests()-errs, elapsed)), BodyBytes: len(body), Conns: n}
	if f.Requests > 0 {
		f.MachineCPUUs = round(busy / float64(f.Requests) * 1e6)
	}
	return f, nil
}
