package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The operations of the load, as counted in the requests table.
const (
	opCreate   = "create deal"
	opReprice  = "reprice"
	opPurchase = "purchase"
	opAuction  = "create auction"
	opBid      = "bid"
	opEnd      = "close/cancel"
)

var chaosOpOrder = []string{opCreate, opReprice, opPurchase, opAuction, opBid, opEnd}

// chaosOps counts the final answers of one operation's requests.
type chaosOps struct {
	Op       string `json:"op"`
	OK       int    `json:"ok"`
	Conflict int    `json:"conflict_409"`
	Invalid  int    `json:"unprocessable_422"`
	Other    int    `json:"other_4xx"`
	GaveUp   int    `json:"gave_up"`
}

// count records the final status of one request of op (0: gave up).
func (c *chaos) count(op string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[string]*chaosOps{}
	}
	o := c.ops[op]
	if o == nil {
		o = &chaosOps{Op: op}
		c.ops[op] = o
	}
	switch {
	case code == 0:
		o.GaveUp++
	case ok2xx(code):
		o.OK++
	case code == http.StatusConflict:
		o.Conflict++
	case code == http.StatusUnprocessableEntity:
		o.Invalid++
	default:
		o.Other++
	}
}

// chaosTold is what the API acknowledged to the load's buyers, for the
// checks against the database.
type chaosTold struct {
	Purchases []chaosSale
	Bids      []string // IDs of bids answered 201
	// SetAside counts the deals the load stopped using after answers that
	// left unclear whether they were sold or auctioned.
	SetAside int
}

// chaosSale is a purchase answered 201: the invoice the buyer was given.
type chaosSale struct{ Deal, Invoice, Buyer string }

// chaosAuction is an auction of the load not yet seen ended.
type chaosAuction struct {
	id       string
	deal     *chaosDeal
	closesAt time.Time // as last read; a late bid moves it
	bids     int       // acknowledged
}

// The auctions of the load: short, so many close during the run and some
// during a fault; a bid in the last extendSeconds moves the close.
const (
	auctionMin    = 3 * time.Second
	auctionSpread = 5 * time.Second
	extendSeconds = 2
	startPrice    = 1000
	minIncrement  = 100
)

// step makes one request of the load: of every 40, 8 deal creates, 8
// bids, 1 close or cancel, 4 purchases, 6 auctions and 13 price changes.
// A bid or an end that finds no live auction changes a price instead, and
// an operation that finds no idle deal creates one.
func (c *chaos) step(ctx context.Context, wg *sync.WaitGroup) {
	r := rand.IntN(40)
	if r < 8 {
		c.create(ctx)
		return
	}
	if r <= 16 {
		if a := c.liveAuction(r == 16); a != nil {
			if r == 16 {
				c.end(ctx, a)
			} else {
				c.bid(ctx, a)
			}
			return
		}
	}
	d := c.takeIdle()
	switch {
	case d == nil:
		c.create(ctx)
	case r >= 17 && r < 21:
		c.purchase(ctx, d)
	case r >= 21 && r < 27:
		c.auction(ctx, d, wg)
	default:
		c.reprice(ctx, d)
	}
}

// liveAuction picks an auction that the load believes open: at random, or
// half the time (unless anyOne) the one closing first, so that bids land
// in its last seconds and extend it.
func (c *chaos) liveAuction(anyOne bool) *chaosAuction {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var open []*chaosAuction
	for _, a := range c.live {
		if a.closesAt.After(now) {
			open = append(open, a)
		}
	}
	if len(open) == 0 {
		return nil
	}
	if !anyOne && rand.IntN(2) == 0 {
		return slices.MinFunc(open, func(a, b *chaosAuction) int { return a.closesAt.Compare(b.closesAt) })
	}
	return open[rand.IntN(len(open))]
}

// racers is how many buyers make one purchase or bid: two at once one
// time in three, so the database has to pick one.
func racers() int {
	if rand.IntN(3) == 0 {
		return 2
	}
	return 1
}

// buyersAtRandom returns n distinct buyers.
func (c *chaos) buyersAtRandom(n int) []chaosBuyer {
	p := rand.Perm(len(c.buyers))[:n]
	out := make([]chaosBuyer, n)
	for i, j := range p {
		out[i] = c.buyers[j]
	}
	return out
}

// concurrently runs each of fns at once and waits for all.
func concurrently(fns ...func()) {
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(f)
	}
	wg.Wait()
}

// purchase buys an idle deal at its price, one time in three by two
// buyers at once: of the two exactly one may get it. The deal leaves the
// pool when sold, or when no answer says whether it was.
func (c *chaos) purchase(ctx context.Context, d *chaosDeal) {
	n := racers()
	codes := make([]int, n)
	var fns []func()
	for i, b := range c.buyersAtRandom(n) {
		fns = append(fns, func() {
			key := uuid.NewString()
			var inv struct{ ID string }
			codes[i] = c.retry(ctx, opPurchase, func() (int, error) {
				return c.call(ctx, http.MethodPost, "/v1/deals/"+d.id+"/purchase", b.token, nil, &inv, "Idempotency-Key", key)
			})
			if ok2xx(codes[i]) {
				c.mu.Lock()
				c.acks = append(c.acks, time.Now())
				c.told.Purchases = append(c.told.Purchases, chaosSale{Deal: d.id, Invoice: inv.ID, Buyer: b.id})
				c.mu.Unlock()
			}
		})
	}
	concurrently(fns...)
	switch {
	case slices.ContainsFunc(codes, ok2xx):
	case slices.ContainsFunc(codes, func(code int) bool { return code == 0 || code == http.StatusConflict }):
		// No answer, or a 409 for a deal the load holds idle: sold or
		// not, the deal is no longer the load's to use.
		c.setAside()
	default:
		c.release(d)
	}
}

func (c *chaos) setAside() {
	c.mu.Lock()
	c.told.SetAside++
	c.mu.Unlock()
}

// chaosAuctionView is what the load reads of an auction.
type chaosAuctionView struct {
	ID             string    `json:"id"`
	Status         string    `json:"status"`
	Outcome        *string   `json:"outcome"`
	ClosesAt       time.Time `json:"closes_at"`
	MinimumNextBid int64     `json:"minimum_next_bid"`
}

// auction puts an idle deal up for auction, closing in 3 to 8 s, half of
// them with a reserve. The workflow closes it; watch returns the deal to
// the pool when it ends unsold.
func (c *chaos) auction(ctx context.Context, d *chaosDeal, wg *sync.WaitGroup) {
	key := uuid.NewString()
	body := map[string]any{"start_price": startPrice, "min_increment": minIncrement, "extend_seconds": extendSeconds,
		"closes_at": time.Now().Add(auctionMin + rand.N(auctionSpread)).UTC().Format(time.RFC3339Nano)}
	if rand.IntN(2) == 0 {
		body["reserve_price"] = startPrice + minIncrement*rand.IntN(8)
	}
	var a chaosAuctionView
	code := c.retry(ctx, opAuction, func() (int, error) {
		return c.call(ctx, http.MethodPost, "/v1/deals/"+d.id+"/auctions", c.sellerTok, body, &a, "Idempotency-Key", key)
	})
	if !ok2xx(code) {
		// A retry past closes_at is 422 though an earlier attempt may have
		// committed: the deal may be under an auction the load never saw.
		c.setAside()
		return
	}
	c.ack()
	x := &chaosAuction{id: a.ID, deal: d, closesAt: a.ClosesAt}
	c.mu.Lock()
	c.live = append(c.live, x)
	c.mu.Unlock()
	wg.Go(func() { c.watch(ctx, x) })
}

// watch reads the auction after each closes_at it knows until it has
// ended, then frees the deal unless the auction sold it.
func (c *chaos) watch(ctx context.Context, x *chaosAuction) {
	for {
		c.mu.Lock()
		at := x.closesAt
		c.mu.Unlock()
		sleepCtx(ctx, max(time.Until(at), 0)+500*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		var a chaosAuctionView
		if _, err := c.call(ctx, http.MethodGet, "/v1/auctions/"+x.id, c.sellerTok, nil, &a); err != nil {
			continue
		}
		c.mu.Lock()
		x.closesAt = a.ClosesAt
		ended := a.Status == "closed" || a.Status == "cancelled"
		if ended {
			c.live = slices.DeleteFunc(c.live, func(l *chaosAuction) bool { return l == x })
			if a.Outcome == nil || *a.Outcome != "won" {
				c.idle = append(c.idle, x.deal)
			}
		}
		c.mu.Unlock()
		if ended {
			return
		}
	}
}

// bid reads the auction's minimum as a buyer and bids it or a little
// more; one time in three two buyers bid the same amount at once, and the
// database accepts one of them. 409 (closed) and 422 (outbid) are the
// normal refusals.
func (c *chaos) bid(ctx context.Context, x *chaosAuction) {
	buyers := c.buyersAtRandom(racers())
	var a chaosAuctionView
	if _, err := c.call(ctx, http.MethodGet, "/v1/auctions/"+x.id, buyers[0].token, nil, &a); err != nil || a.Status != "open" {
		return
	}
	amount := a.MinimumNextBid + minIncrement*rand.Int64N(3)
	var fns []func()
	for _, b := range buyers {
		fns = append(fns, func() {
			key := uuid.NewString()
			var placed struct{ ID string }
			if ok2xx(c.retry(ctx, opBid, func() (int, error) {
				return c.call(ctx, http.MethodPost, "/v1/auctions/"+x.id+"/bids", b.token, map[string]int64{"amount": amount},
					&placed, "Idempotency-Key", key)
			})) {
				c.mu.Lock()
				c.acks = append(c.acks, time.Now())
				c.told.Bids = append(c.told.Bids, placed.ID)
				x.bids++
				c.mu.Unlock()
			}
		})
	}
	concurrently(fns...)
}

// end closes a live auction now, or cancels it when no bid was
// acknowledged; 409 when it closed or took a bid first.
func (c *chaos) end(ctx context.Context, x *chaosAuction) {
	c.mu.Lock()
	path := "/close"
	if x.bids == 0 {
		path = "/cancel"
	}
	c.mu.Unlock()
	if ok2xx(c.retry(ctx, opEnd, func() (int, error) {
		return c.call(ctx, http.MethodPost, "/v1/auctions/"+x.id+path, c.sellerTok, nil, nil)
	})) {
		c.ack()
	}
}

// chaosTrading is what the trading checks found in the run's database.
type chaosTrading struct {
	PurchasesAcked int             `json:"purchases_acknowledged"`
	SetAside       int             `json:"deals_set_aside"`
	BidsAcked      int             `json:"bids_acknowledged"`
	Sold           int             `json:"deals_sold"`
	Invoices       int             `json:"invoices"`
	Auctions       int             `json:"auctions"`
	Won            int             `json:"auctions_won"`
	ReserveNotMet  int             `json:"auctions_reserve_not_met"`
	NoBids         int             `json:"auctions_no_bids"`
	Cancelled      int             `json:"auctions_cancelled"`
	Extended       int             `json:"auctions_extended"`
	Late           int             `json:"auctions_closed_over_2s_late"`
	MaxLag         string          `json:"auction_close_max_lag"`
	Violations     chaosViolations `json:"violations"`
}

// chaosViolations counts each broken rule of trading; the run fails
// unless every one is 0.
type chaosViolations struct {
	SoldWithoutInvoice int `json:"sold_deals_without_invoice"`
	DoubleInvoices     int `json:"deals_with_two_invoices"`
	InvoiceNotSold     int `json:"invoiced_deals_not_sold"`
	AckedNoInvoice     int `json:"acknowledged_purchases_without_invoice"`
	NumberGaps         int `json:"invoice_number_gaps"`
	NumberDuplicates   int `json:"invoice_number_duplicates"`
	StuckAuctions      int `json:"auctions_open_past_close"`
	WrongOutcomes      int `json:"auctions_with_wrong_outcome"`
	BidOrder           int `json:"bids_out_of_order"`
	AckedBidMissing    int `json:"acknowledged_bids_missing"`
}

func (v chaosViolations) total() int {
	return v.SoldWithoutInvoice + v.DoubleInvoices + v.InvoiceNotSold + v.AckedNoInvoice + v.NumberGaps +
		v.NumberDuplicates + v.StuckAuctions + v.WrongOutcomes + v.BidOrder + v.AckedBidMissing
}

// checkTrading reads the seller's deals, invoices, auctions and bids and
// checks them against the rules of trading and against what clients were
// told. The load never voids an invoice nor sets a status by PATCH, so
// here a deal is sold exactly when it has one invoice that is not void.
func checkTrading(ctx context.Context, pool *pgxpool.Pool, seller string, told chaosTold) (chaosTrading, error) {
	t := chaosTrading{PurchasesAcked: len(told.Purchases), BidsAcked: len(told.Bids), SetAside: told.SetAside}
	v := &t.Violations
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE d.status = 'sold'),
		       count(*) FILTER (WHERE d.status = 'sold' AND i.n = 0),
		       count(*) FILTER (WHERE i.n > 1),
		       count(*) FILTER (WHERE d.status <> 'sold' AND i.n > 0)
		FROM deals d, LATERAL (SELECT count(*) AS n FROM invoices i WHERE i.deal_id = d.id AND i.status <> 'void') i
		WHERE d.seller_id = $1`, seller).Scan(&t.Sold, &v.SoldWithoutInvoice, &v.DoubleInvoices, &v.InvoiceNotSold); err != nil {
		return t, fmt.Errorf("deals: %w", err)
	}
	// Numbers are 1..n: any number up to the highest issued (or counted)
	// that no invoice holds is a gap.
	var distinct, highest int
	if err := pool.QueryRow(ctx, `
		SELECT count(*), count(DISTINCT number),
		       greatest(coalesce(max(number), 0), (SELECT coalesce(max(last_number), 0) FROM invoice_counters WHERE seller_id = $1))
		FROM invoices WHERE seller_id = $1`, seller).Scan(&t.Invoices, &distinct, &highest); err != nil {
		return t, fmt.Errorf("invoice numbers: %w", err)
	}
	v.NumberGaps, v.NumberDuplicates = highest-distinct, t.Invoices-distinct
	deals, invoices, buyers := make([]string, len(told.Purchases)), make([]string, len(told.Purchases)), make([]string, len(told.Purchases))
	for i, p := range told.Purchases {
		deals[i], invoices[i], buyers[i] = p.Deal, p.Invoice, p.Buyer
	}
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM unnest($2::UUID[], $3::UUID[], $4::UUID[]) AS p(deal, invoice, buyer)
		WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = p.invoice AND i.seller_id = $1 AND i.deal_id = p.deal
		                  AND i.buyer_id = p.buyer AND i.status <> 'void')`,
		seller, deals, invoices, buyers).Scan(&v.AckedNoInvoice); err != nil {
		return t, fmt.Errorf("acknowledged purchases: %w", err)
	}
	var lag time.Duration
	if err := pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE outcome = 'won'), count(*) FILTER (WHERE outcome = 'reserve_not_met'),
		       count(*) FILTER (WHERE outcome = 'no_bids'), count(*) FILTER (WHERE status = 'cancelled'),
		       count(*) FILTER (WHERE status = 'closed' AND updated_at > closes_at + interval '2 seconds'),
		       coalesce(max(updated_at - closes_at) FILTER (WHERE status = 'closed'), interval '0'),
		       count(*) FILTER (WHERE status IN ('scheduled', 'open') AND closes_at < now())
		FROM auctions WHERE seller_id = $1`, seller).Scan(&t.Auctions, &t.Won, &t.ReserveNotMet, &t.NoBids, &t.Cancelled,
		&t.Late, &lag, &v.StuckAuctions); err != nil {
		return t, fmt.Errorf("auctions: %w", err)
	}
	t.MaxLag = lag.Round(10 * time.Millisecond).String()
	// The outcome is the bids' verdict; a won auction sold its deal to the
	// leader at the best bid through its one invoice; any other sold
	// nothing.
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM auctions a JOIN deals d ON d.id = a.deal_id
		WHERE a.seller_id = $1 AND a.status IN ('closed', 'cancelled') AND (CASE
		  WHEN a.outcome = 'won' THEN a.best_bid >= coalesce(a.reserve_price, 0) AND d.status = 'sold'
		    AND (SELECT count(*) FROM invoices i WHERE i.auction_id = a.id) = 1
		    AND EXISTS (SELECT 1 FROM invoices i WHERE i.id = a.invoice_id AND i.auction_id = a.id AND i.deal_id = a.deal_id
		                AND i.buyer_id = a.leader_id AND i.total = a.best_bid AND i.status <> 'void')
		  ELSE a.invoice_id IS NULL AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.auction_id = a.id) AND CASE
		    WHEN a.status = 'cancelled' THEN a.outcome IS NULL AND a.bid_count = 0
		    WHEN a.outcome = 'no_bids' THEN a.bid_count = 0
		    WHEN a.outcome = 'reserve_not_met' THEN a.best_bid < a.reserve_price
		    ELSE false END
		  END) IS NOT TRUE`, seller).Scan(&v.WrongOutcomes); err != nil {
		return t, fmt.Errorf("auction outcomes: %w", err)
	}
	// Accepted bids in commit order (seq): consecutive, each at least the
	// minimum of its turn, later in time and before closes_at; the auction
	// shows the last as its best, and a closes_at at least extend_seconds
	// after it (a bid in the last seconds extends the auction).
	var badBids, badAuctions int
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM (
		  SELECT b.seq, b.amount, b.placed_at, a.start_price, a.min_increment, a.closes_at,
		         lag(b.amount) OVER w AS prev_amount, lag(b.placed_at) OVER w AS prev_at, row_number() OVER w AS n
		  FROM bids b JOIN auctions a ON a.id = b.auction_id
		  WHERE a.seller_id = $1
		  WINDOW w AS (PARTITION BY b.auction_id ORDER BY b.seq)
		) x
		WHERE seq <> n OR placed_at >= closes_at OR amount < coalesce(prev_amount + min_increment, start_price)
		   OR placed_at <= prev_at`, seller).Scan(&badBids); err != nil {
		return t, fmt.Errorf("bids: %w", err)
	}
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE a.bid_count <> coalesce(last.seq, 0) OR a.best_bid IS DISTINCT FROM last.amount
		                          OR a.leader_id IS DISTINCT FROM last.buyer_id
		                          OR a.closes_at < last.placed_at + make_interval(secs => a.extend_seconds)),
		       count(*) FILTER (WHERE a.closes_at > created.closes_at)
		FROM auctions a
		LEFT JOIN LATERAL (SELECT b.seq, b.amount, b.buyer_id, b.placed_at FROM bids b WHERE b.auction_id = a.id
		                   ORDER BY b.seq DESC LIMIT 1) last ON true
		LEFT JOIN (SELECT e.payload->'data'->'auction'->>'id' AS id,
		                  (e.payload->'data'->'auction'->>'closes_at')::TIMESTAMPTZ AS closes_at
		           FROM events e WHERE e.seller_id = $1 AND e.type = 'auction.created' AND e.named) created
		       ON created.id = a.id::TEXT
		WHERE a.seller_id = $1`, seller).Scan(&badAuctions, &t.Extended); err != nil {
		return t, fmt.Errorf("bids of auctions: %w", err)
	}
	v.BidOrder = badBids + badAuctions
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM unnest($2::UUID[]) AS p(id)
		WHERE NOT EXISTS (SELECT 1 FROM bids b JOIN auctions a ON a.id = b.auction_id WHERE b.id = p.id AND a.seller_id = $1)`,
		seller, told.Bids).Scan(&v.AckedBidMissing); err != nil {
		return t, fmt.Errorf("acknowledged bids: %w", err)
	}
	return t, nil
}

func (t chaosTrading) print(w io.Writer) {
	v := t.Violations
	fmt.Fprintf(w, "\ntrading: %d purchases and %d bids acknowledged; %d deals sold, %d invoices; deals set aside: %d\n",
		t.PurchasesAcked, t.BidsAcked, t.Sold, t.Invoices, t.SetAside)
	fmt.Fprintf(w, "auctions: %d (%d won, %d reserve not met, %d no bids, %d cancelled), %d extended by a late bid;\n"+
		"  %d closed over 2 s after closes_at, at most %s\n",
		t.Auctions, t.Won, t.ReserveNotMet, t.NoBids, t.Cancelled, t.Extended, t.Late, t.MaxLag)
	fmt.Fprintf(w, "%-46s %10s\n", "trading check", "violations")
	for _, r := range []struct {
		name string
		n    int
	}{
		{"sold deal without an invoice", v.SoldWithoutInvoice},
		{"deal with two invoices", v.DoubleInvoices},
		{"invoiced deal not sold", v.InvoiceNotSold},
		{"acknowledged purchase without its invoice", v.AckedNoInvoice},
		{"invoice number gap", v.NumberGaps},
		{"invoice number duplicate", v.NumberDuplicates},
		{"auction open past closes_at (stuck)", v.StuckAuctions},
		{"auction outcome, invoice or deal wrong", v.WrongOutcomes},
		{"bid out of order or extension missed", v.BidOrder},
		{"acknowledged bid missing", v.AckedBidMissing},
	} {
		fmt.Fprintf(w, "%-46s %10d\n", r.name, r.n)
	}
}

// printOps prints how the load's requests ended.
func printOps(w io.Writer, ops []chaosOps) {
	fmt.Fprintf(w, "\n%-15s %6s %5s %5s %5s %7s\n", "requests", "ok", "409", "422", "4xx", "gave up")
	for _, o := range ops {
		fmt.Fprintf(w, "%-15s %6d %5d %5d %5d %7d\n", o.Op, o.OK, o.Conflict, o.Invalid, o.Other, o.GaveUp)
	}
	fmt.Fprintf(w, "409 and 422: the loser of two buyers racing, a bid outbid or late, an auction that ended first;\n"+
		"gave up: no final answer after a minute of retries or when the load stopped\n")
}
