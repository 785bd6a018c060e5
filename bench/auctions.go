package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/dealcast/dealcast/internal/store"
)

// hotAuction: every buyer bids as fast as it can on one auction, each bid
// one more than the last one sent, so most race the one before; beside a
// pgbench script that updates one row from as many clients.
func (r *runner) hotAuction(ctx context.Context, res *Result) error {
	res.Goal = "ratio = bids_per_s / pgbench_tps >= 0.5, p99_ms <= 100, accepted amounts increasing"
	bidders := r.cfg.AuctionBidders
	sd, err := r.st.seed(ctx, 1, bidders, 1, nil)
	if err != nil {
		return err
	}
	tokens, err := r.st.tokens(store.RoleBuyer, sd.buyers)
	if err != nil {
		return err
	}
	ids, err := r.createAuctions(ctx, sd.sellers[0], sd.deals, time.Now().Add(r.cfg.duration()+time.Hour))
	if err != nil {
		return err
	}
	tps := r.baseline(ctx, "hot_row", res)
	hc := newClient(bidders)
	defer hc.CloseIdleConnections()
	var amount atomic.Int64
	amount.Store(100)
	tr := func(t *vegeta.Target) error {
		*t = r.st.target(http.MethodPost, "/v1/auctions/"+ids[0]+"/bids", tokens[rand.IntN(len(tokens))], fmt.Appendf(nil, `{"amount":%d}`, amount.Add(1)))
		t.Header.Set("Idempotency-Key", uuid.NewString())
		return nil
	}
	stop := r.measure(ctx, "hot_auction", res)
	l := closedLoop(ctx, hc, bidders, r.cfg.duration(), tr)
	stop()
	// A refused bid (422, with the minimum it missed) is an answer too:
	// the database decided it against the auction's row.
	accepted, refused := l.StatusCodes["201"], l.StatusCodes["422"]
	other := int(l.Requests) - accepted - refused
	perS := round(perSecond(accepted+refused, l.elapsed))
	var amounts []int64
	rows, err := r.st.pool.Query(ctx, `SELECT amount FROM bids WHERE auction_id = $1 ORDER BY seq`, ids[0])
	if err == nil {
		amounts, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return err
	}
	increasing := len(amounts) == accepted && slices.IsSortedFunc(amounts, func(a, b int64) int {
		if a < b {
			return -1
		}
		return 1 // equal amounts are not increasing
	})
	q := ratio(perS, tps)
	res.latency(l.Latencies)
	res.set("bidders", bidders, "requests", l.Requests, "accepted", accepted, "refused", refused, "errors", other,
		"bids_per_s", perS, "ratio", q, "accepted_increasing", increasing, "seconds", l.secs())
	res.Met = q >= 0.5 && res.P99Ms <= 100 && increasing && other == 0
	res.Figure = fmt.Sprintf("ratio %.3f (%.0f bids/s / %.0f tps), p99 %.1f ms", q, perS, tps, res.P99Ms)
	return nil
}

// auctionClose: auctions with one bid each, all closing in the same
// second; each must close, by its workflow, within a second of its
// closes_at and end in exactly one invoice.
func (r *runner) auctionClose(ctx context.Context, res *Result) error {
	res.Goal = "every auction closed within 1 s of closes_at (p99_ms <= 1000), one invoice each"
	n := r.cfg.AuctionCloses
	sd, err := r.st.seed(ctx, 1, 1, n, nil)
	if err != nil {
		return err
	}
	token, err := r.st.token(store.RoleBuyer, sd.buyers[0])
	if err != nil {
		return err
	}
	// Time to create and bid on every auction first, at a whole second.
	closesAt := time.Now().Add(10*time.Second + time.Duration(n)*20*time.Millisecond).Truncate(time.Second)
	ids, err := r.createAuctions(ctx, sd.sellers[0], sd.deals, closesAt)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := r.call(ctx, http.MethodPost, "/v1/auctions/"+id+"/bids", token, `{"amount":1000}`); err != nil {
			return err
		}
	}
	if time.Now().After(closesAt) {
		return fmt.Errorf("creating %d auctions took past their closes_at", n)
	}
	stop := r.measure(ctx, "auction_close", res)
	var closed, invoices int
	for deadline := closesAt.Add(r.cfg.Grace); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
		err := r.st.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'closed'),
			(SELECT count(*) FROM invoices WHERE auction_id = ANY($1)) FROM auctions WHERE id = ANY($1)`, ids).Scan(&closed, &invoices)
		if err != nil {
			return err
		}
		if closed == n && invoices == n {
			break
		}
	}
	stop()
	// The close transaction sets updated_at: how late after closes_at.
	var q []float64
	var mx float64
	err = r.st.pool.QueryRow(ctx, `
		SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY lag)::FLOAT8[], max(lag)
		FROM (SELECT EXTRACT(EPOCH FROM updated_at - closes_at) * 1000 AS lag FROM auctions WHERE id = ANY($1) AND status = 'closed') l`,
		ids).Scan(&q, &mx)
	if err != nil || len(q) != 3 {
		return fmt.Errorf("close lag: %v", err)
	}
	res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs = round(q[0]), round(q[1]), round(q[2]), round(mx)
	res.set("auctions", n, "closed", closed, "invoices", invoices, "closes_at", closesAt.UTC().Format(time.RFC3339))
	res.Met = closed == n && invoices == n && res.P99Ms <= 1000
	res.Figure = fmt.Sprintf("%d of %d closed, p99 %.0f ms late, %d invoices", closed, n, res.P99Ms, invoices)
	return nil
}

// createAuctions opens an auction on each deal through the API.
func (r *runner) createAuctions(ctx context.Context, seller string, deals []string, closesAt time.Time) ([]string, error) {
	token, err := r.st.token(store.RoleSeller, seller)
	if err != nil {
		return nil, err
	}
	body := fmt.Sprintf(`{"start_price":100,"min_increment":1,"closes_at":%q}`, closesAt.UTC().Format(time.RFC3339Nano))
	var ids []string
	for _, d := range deals {
		var a struct{ ID string }
		if err := r.call(ctx, http.MethodPost, "/v1/deals/"+d+"/auctions", token, body, &a); err != nil {
			return nil, err
		}
		ids = append(ids, a.ID)
	}
	return ids, nil
}

// call sends one request of a scenario's set-up and decodes its answer
// into out, if given; any status but 2xx is an error.
func (r *runner) call(ctx context.Context, method, path, token, body string, out ...any) error {
	t := r.st.target(method, path, token, []byte(body))
	req, err := http.NewRequestWithContext(ctx, method, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return err
	}
	req.Header = t.Header
	req.Header.Set("Idempotency-Key", uuid.NewString())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	for _, o := range out {
		if err := json.Unmarshal(b, o); err != nil {
			return err
		}
	}
	return nil
}
