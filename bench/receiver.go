package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Receivers are buyers' webhook endpoints: real HTTP servers on loopback
// that note when each delivery arrives and answer 204 at once. Endpoint i
// is {server i mod n}/e/i. They do not check signatures: that would be
// the receiving side's CPU, not the service's.
type Receivers struct {
	servers []*http.Server
	bases   []string
	wg      sync.WaitGroup
	tracker atomic.Pointer[Tracker]
}

// startReceivers starts n receiver servers.
func startReceivers(ctx context.Context, n int) (*Receivers, error) {
	r := &Receivers{}
	r.tracker.Store(newTracker())
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, err
		}
		srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
		r.servers = append(r.servers, srv)
		r.bases = append(r.bases, "http://"+ln.Addr().String())
		r.wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("part", "receiver"), func(context.Context) {
			defer r.wg.Done()
			_ = srv.Serve(ln)
		})
	}
	return r, nil
}

// URLs returns the URLs of endpoints 0..n-1.
func (r *Receivers) URLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = r.bases[i%len(r.bases)] + "/e/" + strconv.Itoa(i)
	}
	return out
}

// Track makes t record what arrives from now on.
func (r *Receivers) Track(t *Tracker) { r.tracker.Store(t) }

// Close stops the servers.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	r.wg.Wait()
}

// delivered is the part of a delivered event the receivers read.
type delivered struct {
	Data struct {
		Deal struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"deal"`
	} `json:"data"`
}

func (r *Receivers) serve(w http.ResponseWriter, req *http.Request) {
	if strings.HasPrefix(req.URL.Path, "/floor/") {
		// The POST floor's receiver: read the delivery, answer, nothing else.
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	at := time.Now()
	endpoint, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/e/"))
	if err != nil || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id, version, ok := changeOf(body)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.tracker.Load().arrive(req.Header.Get("webhook-id"), changeKey(id, version), endpoint, at)
	w.WriteHeader(http.StatusNoContent)
}

// changeOf reads the deal's ID and version from a delivered event. The
// receivers share the machine with the service under test, and decoding
// every body was 2 % of the bench process at 40 changes/s: the body is
// scanned for the two values instead, and decoded in full only when the
// scan does not find them where the service puts them.
func changeOf(body []byte) (id string, version int64, ok bool) {
	if id, version, ok = scanChange(body); ok {
		return id, version, true
	}
	var ev delivered
	if err := json.Unmarshal(body, &ev); err != nil || ev.Data.Deal.ID == "" {
		return "", 0, false
	}
	return ev.Data.Deal.ID, ev.Data.Deal.Version, true
}

// scanChange finds `"data": {"deal": {"id": "…"` and then the deal's
// `"version": N`, spaced as PostgreSQL prints a JSONB value (how the
// payload is stored and sent) or compact. The deal's "id" is its first
// key in both (JSONB orders keys by length), and no key between it and
// "version" is "version": an item's keys are id, name and price, and a
// quote inside a string is escaped, so a name cannot end a key.
func scanChange(body []byte) (string, int64, bool) {
	rest, ok := afterKey(body, "data")
	if !ok {
		return "", 0, false
	}
	if rest, ok = openObject(rest); !ok {
		return "", 0, false
	}
	if rest, ok = afterKeyAtStart(rest, "deal"); !ok {
		return "", 0, false
	}
	if rest, ok = openObject(rest); !ok {
		return "", 0, false
	}
	if rest, ok = afterKeyAtStart(rest, "id"); !ok || len(rest) == 0 || rest[0] != '"' {
		return "", 0, false
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end <= 0 {
		return "", 0, false
	}
	id := string(rest[1 : 1+end])
	if rest, ok = afterKey(rest[1+end:], "version"); !ok {
		return "", 0, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil || n == len(rest) || (rest[n] != ',' && rest[n] != '}' && rest[n] != ' ') {
		return "", 0, false
	}
	return id, v, true
}

// afterKey returns what follows the first `"key":` (and the spaces after
// it) in b.
func afterKey(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte(`"`+key+`"`))
	if i < 0 {
		return nil, false
	}
	return colon(b[i+len(key)+2:])
}

// afterKeyAtStart is afterKey for a key that must come first in b.
func afterKeyAtStart(b []byte, key string) ([]byte, bool) {
	k := `"` + key + `"`
	if !bytes.HasPrefix(b, []byte(k)) {
		return nil, false
	}
	return colon(b[len(k):])
}

// colon skips spaces, one colon and spaces.
func colon(b []byte) ([]byte, bool) {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 || b[0] != ':' {
		return nil, false
	}
	return bytes.TrimLeft(b[1:], " "), true
}

// openObject skips an opening brace and the spaces after it.
func openObject(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	return bytes.TrimLeft(b[1:], " "), true
}

// changeKey names one change of one deal: the deal after it, at its version.
func changeKey(dealID string, version int64) string {
	return dealID + "/" + strconv.FormatInt(version, 10)
}

// Tracker matches the changes the load generator made (the API's
// response, keyed by deal and version) with the deliveries that arrive
// (the same deal and version in the body, per webhook-id and endpoint).
type Tracker struct {
	mu       sync.Mutex
	sent     map[string]time.Time // change → when its API response was received
	first    map[arrivalKey]arrival
	total    int
	firstReq time.Time
}

type arrivalKey struct {
	eventID  string
	endpoint int
}

type arrival struct {
	change string
	at     time.Time
}

func newTracker() *Tracker {
	return &Tracker{sent: map[string]time.Time{}, first: map[arrivalKey]arrival{}}
}

// started notes when the first change was sent.
func (t *Tracker) started(at time.Time) {
	t.mu.Lock()
	if t.firstReq.IsZero() {
		t.firstReq = at
	}
	t.mu.Unlock()
}

// sentChange records the API's answer to a change.
func (t *Tracker) sentChange(change string, at time.Time) {
	t.mu.Lock()
	t.sent[change] = at
	t.mu.Unlock()
}

func (t *Tracker) arrive(eventID, change string, endpoint int, at time.Time) {
	t.mu.Lock()
	t.total++
	k := arrivalKey{eventID, endpoint}
	if _, dup := t.first[k]; !dup {
		t.first[k] = arrival{change: change, at: at}
	}
	t.mu.Unlock()
}

// matched counts the (event, endpoint) pairs that belong to a sent change.
func (t *Tracker) matched() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, a := range t.first {
		if _, ok := t.sent[a.change]; ok {
			n++
		}
	}
	return n
}

// wait waits until every sent change has reached all endpoints, or grace
// has passed since the call.
func (t *Tracker) wait(ctx context.Context, endpoints int, grace time.Duration) {
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		t.mu.Lock()
		want := len(t.sent) * endpoints
		t.mu.Unlock()
		if t.matched() >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Delivery is the outcome of a webhook run.
type Delivery struct {
	Changes    int     // changes the API confirmed
	Expected   int     // (event, endpoint) pairs owed: changes × endpoints
	Received   int     // distinct pairs that arrived
	Lost       int     // Expected − Received, after the grace period
	Duplicates int     // arrivals beyond the first of a pair
	Unexpected int     // arrivals of changes this run did not send (warm-up, an earlier step)
	Early      int     // arrivals before the API response was read (counted as 0 ms)
	Latency    Summary // response → first arrival, per pair
	// Span is from the first change sent to the last arrival.
	Span time.Duration
	// LastAfter is from the last response to the last arrival.
	LastAfter time.Duration
}

// result compares what was sent with what arrived at endpoints endpoints.
func (t *Tracker) result(endpoints int) Delivery {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := Delivery{Changes: len(t.sent), Expected: len(t.sent) * endpoints}
	var lat []float64
	var last, lastSent time.Time
	for _, at := range t.sent {
		if at.After(lastSent) {
			lastSent = at
		}
	}
	perChange := map[string]int{}
	for _, a := range t.first {
		sent, ok := t.sent[a.change]
		if !ok {
			d.Unexpected++
			continue
		}
		perChange[a.change]++
		d.Received++
		ms := float64(a.at.Sub(sent).Nanoseconds()) / 1e6
		if ms < 0 {
			d.Early++
			ms = 0
		}
		lat = append(lat, ms)
		if a.at.After(last) {
			last = a.at
		}
	}
	d.Duplicates = t.total - len(t.first)
	d.Lost = d.Expected - d.Received
	d.Latency = summarise(lat)
	if !last.IsZero() && !t.firstReq.IsZero() {
		d.Span = last.Sub(t.firstReq)
	}
	if !last.IsZero() && !lastSent.IsZero() {
		d.LastAfter = last.Sub(lastSent)
	}
	return d
}
