package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealcast/dealcast/internal/deal"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// Idempotency identifies a create request that may be repeated.
type Idempotency struct {
	Key string
	// Request is the canonical request body; a repeat with the same key must
	// carry the same body.
	Request []byte
}

const dealColumns = `id::TEXT, seller_id::TEXT, name, total_price, net_price, currency,
	discount_type, discount_amount, status, items, version, created_at, updated_at`

// dealColumnsOf is dealColumns qualified by a table name or alias.
func dealColumnsOf(t string) string {
	cols := strings.Split(dealColumns, ",")
	for i, c := range cols {
		cols[i] = t + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// scanDeal reads the columns of dealColumns, then any extra ones into extra.
func scanDeal(row pgx.Row, extra ...any) (deal.Deal, error) {
	var (
		d        deal.Deal
		discType *string
		discAmt  *int64
	)
	err := row.Scan(append([]any{&d.ID, &d.Seller, &d.Name, &d.TotalPrice, &d.NetPrice, &d.Currency,
		&discType, &discAmt, &d.Status, &d.Items, &d.Version, &d.CreatedAt, &d.UpdatedAt}, extra...)...)
	if err != nil {
		return deal.Deal{}, err
	}
	if discType != nil && discAmt != nil {
		d.Discount = &deal.Discount{Type: deal.DiscountType(*discType)}
		if d.Discount.Type == deal.DiscountPercentage {
			d.Discount.Amount = deal.AmountFromHundredths(*discAmt)
		} else {
			d.Discount.Amount = deal.AmountOf(*discAmt)
		}
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, nil
}

// discountColumns maps a discount to its two columns: minor units for a
// flat discount, hundredths of a percent for a percentage.
func discountColumns(d *deal.Discount) (typ *string, amount *int64) {
	if d == nil {
		return nil, nil
	}
	t := string(d.Type)
	var v int64
	if d.Type == deal.DiscountPercentage {
		v, _ = d.Amount.Hundredths()
	} else {
		v, _ = d.Amount.Units()
	}
	return &t, &v
}

// CreateDeal stores a new, validated deal with its deal.created event,
// atomically. With an Idempotency-Key it returns the first response
// for a repeat of the same request (replayed true), and
// ErrIdempotencyConflict for the same key with another body.
// The returned event is nil on a replay: no new event was written.
func (s *Store) CreateDeal(ctx context.Context, d deal.Deal, idem *Idempotency) (created deal.Deal, replayed bool, event *EventRef, err error) {
	var ev deal.Event
	if idem == nil {
		// Without a key the deal and its event are one statement: one
		// round trip, atomic on its own, and on CockroachDB retried by the
		// server itself, where a transaction costs BEGIN, the retry
		// savepoint, RELEASE and COMMIT besides.
		err = translate(crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
			now := s.timestamp() // stamped on each attempt, as below
			d.CreatedAt, d.UpdatedAt = now, now
			ev = deal.Created(d)
			return insertDeal(ctx, s.pool, d, ev)
		}))
		if err != nil {
			return deal.Deal{}, false, nil, err
		}
		return d, false, refOf(ev), nil
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// Stamped on each attempt: a transaction retried after a
		// serialization conflict must not commit with its first try's
		// time, which the events feed would take for an older event.
		now := s.timestamp()
		d.CreatedAt, d.UpdatedAt = now, now
		ev = deal.Created(d)
		response, err := json.Marshal(d)
		if err != nil {
			return err
		}
		replayed = false
		if idem != nil {
			first, claimed, err := claimIdempotencyKey(ctx, tx, d.Seller, idem, response, now)
			if err != nil {
				return err
			}
			if !claimed {
				replayed = true
				return json.Unmarshal(first, &created)
			}
		}
		created = d
		return insertDeal(ctx, tx, d, ev)
	})
	if err != nil || replayed {
		return created, replayed, nil, err
	}
	return created, false, refOf(ev), nil
}

func refOf(ev deal.Event) *EventRef {
	return &EventRef{ID: ev.ID, Type: string(ev.Type), DealID: ev.Data.Deal.ID}
}

// claimKeySQL records a key ($1 account, $2 key, $3 request hash, $4
// response, $5 now), taking over one expired before $6: one row affected
// when claimed.
const claimKeySQL = `
		INSERT INTO idempotency_keys (seller_id, key, request_hash, status_code, response, created_at)
		VALUES ($1, $2, $3, 201, $4, $5)
		ON CONFLICT (seller_id, key) DO UPDATE
		SET request_hash = excluded.request_hash, status_code = excluded.status_code,
		    response = excluded.response, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < $6`

// claimIdempotencyKey records key for account's request, with response as
// the answer to replay. When a live record of the key already exists it
// returns that record's response and claimed false, or
// ErrIdempotencyConflict when it was for another request. The insert
// blocks on a concurrent transaction holding the same key, so of many
// simultaneous requests exactly one claims it.
func claimIdempotencyKey(ctx context.Context, tx pgx.Tx, account string, idem *Idempotency, response []byte, now time.Time) (first []byte, claimed bool, err error) {
	hash := sha256.Sum256(idem.Request)
	tag, err := tx.Exec(ctx, claimKeySQL, account, idem.Key, hash[:], response, now, now.Add(-IdempotencyTTL))
	if err != nil {
		return nil, false, err
	}
	if tag.RowsAffected() == 1 {
		return nil, true, nil
	}
	first, found, err := recordedResponse(ctx, tx, account, idem, now)
	if err == nil && !found {
		err = pgx.ErrNoRows // unreachable: the record the insert met is live
	}
	return first, false, err
}

// setIdempotentResponse replaces the response recorded for a key this
// transaction claimed, once the response is known.
func setIdempotentResponse(ctx context.Context, tx pgx.Tx, account string, idem *Idempotency, response []byte) error {
	_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET response = $3 WHERE seller_id = $1 AND key = $2`, account, idem.Key, response)
	return err
}

// execer runs a statement: the pool (a statement on its own) or a
// transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertDeal writes a new deal and its outbox event in one statement: the
// event row is made from the deal row the first insert returns, so both
// are written or neither is.
func insertDeal(ctx context.Context, q execer, d deal.Deal, ev deal.Event) error {
	discType, discAmt := discountColumns(d.Discount)
	_, err := q.Exec(ctx, `
		WITH new_deal AS (
			INSERT INTO deals (id, seller_id, name, total_price, net_price, currency, discount_type,
			                   discount_amount, status, items, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			RETURNING id, seller_id, version
		)
		INSERT INTO events (id, type, deal_id, seller_id, deal_version, payload, created_at)
		SELECT $14, $15, id, seller_id, version, $16, $17 FROM new_deal`,
		d.ID, d.Seller, d.Name, d.TotalPrice, d.NetPrice, d.Currency, discType, discAmt,
		string(d.Status), d.Items, d.Version, d.CreatedAt, d.UpdatedAt,
		ev.ID, string(ev.Type), ev, ev.CreatedAt)
	return err
}

// DealForSeller returns a deal owned by seller.
func (s *Store) DealForSeller(ctx context.Context, id, seller string) (deal.Deal, error) {
	d, err := scanDeal(s.pool.QueryRow(ctx, `SELECT `+dealColumns+` FROM deals WHERE id = $1 AND seller_id = $2`, id, seller))
	return d, translate(err)
}

// DealForBuyer returns a deal whose seller currently authorises buyer.
func (s *Store) DealForBuyer(ctx context.Context, id, buyer string) (deal.Deal, error) {
	d, err := scanDeal(s.pool.QueryRow(ctx, `
		SELECT `+dealColumns+` FROM deals d
		WHERE d.id = $1 AND EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = d.seller_id AND g.buyer_id = $2)`,
		id, buyer))
	return d, translate(err)
}

// PatchDeal applies a merge patch to seller's deal. With ifMatch it fails
// with ErrVersionMismatch unless the deal is at that version. A patch that
// changes nothing returns the deal as it is and writes no event; any other
// bumps the version and writes a deal.updated event in the same
// statement, returned so delivery can start at once (nil for a no-op).
func (s *Store) PatchDeal(ctx context.Context, id, seller string, ifMatch *int64, p deal.Patch) (deal.Deal, *EventRef, error) {
	// Optimistic: read the deal, apply the patch, and write the new version
	// and its event in one statement that applies only if the version read
	// is still current: two round trips, where a transaction holding a row
	// lock needs several more. A patch that lost a race reads again:
	// without If-Match it applies to the newer version, with If-Match it
	// fails on the check.
	for {
		var (
			live bool
			cur  deal.Deal
		)
		// Retried like the write: under SERIALIZABLE a read can be a
		// serialization failure's victim too.
		err := crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
			var err error
			cur, err = scanDeal(s.pool.QueryRow(ctx, `SELECT `+dealColumns+`, live_auction_id IS NOT NULL FROM deals WHERE id = $1 AND seller_id = $2`, id, seller), &live)
			return err
		})
		if err != nil {
			return deal.Deal{}, nil, translate(err)
		}
		if ifMatch != nil && *ifMatch != cur.Version {
			return deal.Deal{}, nil, ErrVersionMismatch
		}
		change, err := deal.Apply(cur, p)
		if err != nil {
			return deal.Deal{}, nil, err
		}
		if !change.Changed() {
			return cur, nil, nil
		}
		// A live auction holds everything but the name. The UPDATE checks
		// again, so an auction created after this read stops the patch too.
		_, renamed := change.Previous["name"]
		nameOnly := renamed && len(change.Previous) == 1
		if live && !nameOnly {
			return deal.Deal{}, nil, ErrAuctionLive
		}
		var (
			ev      deal.Event
			applied bool
		)
		err = crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
			next := change.Deal
			next.Version = cur.Version + 1
			next.UpdatedAt = s.timestamp() // after the read: later than the version it replaces
			change.Deal = next
			ev = deal.Updated(change)
			var err error
			applied, err = updateDeal(ctx, s.pool, cur.Version, next, ev, nameOnly)
			return err
		})
		if err != nil {
			return deal.Deal{}, nil, translate(err)
		}
		if applied {
			return change.Deal, refOf(ev), nil
		}
		if err := ctx.Err(); err != nil {
			return deal.Deal{}, nil, translate(err)
		}
	}
}

// updateDeal writes next over the version from and next's event in one
// statement, and reports false (nothing written) when the deal is no
// longer at version from, or has a live auction unless underAuction
// allows it (a rename, or the auction's own close).
func updateDeal(ctx context.Context, q execer, from int64, next deal.Deal, ev deal.Event, underAuction bool) (bool, error) {
	discType, discAmt := discountColumns(next.Discount)
	tag, err := q.Exec(ctx, `
		WITH updated AS (
			UPDATE deals SET name = $2, total_price = $3, net_price = $4, currency = $5, discount_type = $6,
			       discount_amount = $7, status = $8, items = $9, version = $10, updated_at = $11
			WHERE id = $1 AND version = $12 AND ($17 OR live_auction_id IS NULL)
			RETURNING id, seller_id, version
		)
		INSERT INTO events (id, type, deal_id, seller_id, deal_version, payload, created_at)
		SELECT $13, $14, id, seller_id, version, $15, $16 FROM updated`,
		next.ID, next.Name, next.TotalPrice, next.NetPrice, next.Currency, discType, discAmt,
		string(next.Status), next.Items, next.Version, next.UpdatedAt, from,
		ev.ID, string(ev.Type), ev, ev.CreatedAt, underAuction)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// DealFilter narrows a deal list.
type DealFilter struct {
	Seller string      // only this seller's deals; empty for all visible
	Status deal.Status // only deals in this status; empty for any
}

// SellerDeals lists seller's own deals, newest first.
func (s *Store) SellerDeals(ctx context.Context, seller string, f DealFilter, cursor string, limit int) (Page[deal.Deal], error) {
	if f.Seller != "" && f.Seller != seller {
		return Page[deal.Deal]{}, nil // another seller's deals are never visible
	}
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[deal.Deal]{}, err
	}
	args := []any{seller}
	where := "deals.seller_id = $1" + dealConditions(&args, f.Status, pos)
	args = append(args, limit+1)
	// Columns are qualified throughout: unqualified, ORDER BY id would
	// name the id::TEXT output column and sort text without the index.
	return s.listDeals(ctx, fmt.Sprintf(`SELECT %s FROM deals WHERE %s
		ORDER BY deals.created_at DESC, deals.id DESC LIMIT $%d`, dealColumnsOf("deals"), where, len(args)), args, limit)
}

// BuyerDeals lists the deals of every seller that authorises buyer, newest
// first. Each granting seller's newest deals come from its own index range
// (deals_by_seller), so the work grows with the sellers, not with their
// deals; the page is chosen on index columns alone and only its rows are
// then read whole.
//
// One seller may hold a whole page, so each range must be able to give
// limit+1 entries; but a buyer with many sellers needs only a few from
// each. The first pass takes at most firstPassPerSeller entries per
// seller. If no seller's last entry taken made the page, every seller's
// next entry is older than the page's last, and the page is exact; else
// (one seller dominates the newest deals) the page is chosen again with
// limit+1 entries per seller.
func (s *Store) BuyerDeals(ctx context.Context, buyer string, f DealFilter, cursor string, limit int) (Page[deal.Deal], error) {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[deal.Deal]{}, err
	}
	want := limit + 1
	per := firstPass(f, want)
	for {
		query, args := buyerDealsQuery(buyer, f, pos, want, per)
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return Page[deal.Deal]{}, translate(err)
		}
		short := false // a seller's last entry taken is on the page
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deal.Deal, error) {
			var last bool
			d, err := scanDeal(r, &last)
			short = short || last
			return d, err
		})
		if err != nil {
			return Page[deal.Deal]{}, translate(err)
		}
		if short && per < want {
			per = want
			continue
		}
		return pageOf(list, limit, func(d deal.Deal) position { return position{At: d.CreatedAt, ID: d.ID} }), nil
	}
}

// firstPassPerSeller is how many entries the first pass of BuyerDeals
// takes from each granting seller: with 50 sellers and pages of 100, four
// times what an even spread puts on a page.
const firstPassPerSeller = 8

// firstPass is how many entries per seller BuyerDeals takes first for a
// page of want entries: one seller's range needs no first pass.
func firstPass(f DealFilter, want int) int {
	if f.Seller != "" {
		return want
	}
	return min(want, firstPassPerSeller)
}

// ExplainBuyerDeals runs EXPLAIN (ANALYZE, BUFFERS) of the first pass of
// BuyerDeals for the same arguments and returns the plan's lines: the
// benchmark reports the plan of the service's own query, not of a copy.
func (s *Store) ExplainBuyerDeals(ctx context.Context, buyer string, f DealFilter, cursor string, limit int) ([]string, error) {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	query, args := buyerDealsQuery(buyer, f, pos, limit+1, firstPass(f, limit+1))
	rows, err := s.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+query, args...)
	if err != nil {
		return nil, translate(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return lines, translate(err)
}

// buyerDealsQuery selects the newest want of the per newest entries of
// each granting seller, whole, each with whether it was the last entry
// taken from its seller.
func buyerDealsQuery(buyer string, f DealFilter, pos *position, want, per int) (string, []any) {
	args := []any{buyer}
	grantWhere := "g.buyer_id = $1"
	if f.Seller != "" {
		args = append(args, f.Seller)
		grantWhere += fmt.Sprintf(" AND g.seller_id = $%d", len(args))
	}
	inner := "deals.seller_id = g.seller_id" + dealConditions(&args, f.Status, pos)
	args = append(args, per, want)
	p, w := len(args)-1, len(args)
	// An index-only scan of deals_by_seller per granting seller.
	return fmt.Sprintf(`
		SELECT %s, page.last FROM deals JOIN (
			SELECT k.id, k.n = $%d AS last FROM grants g,
			LATERAL (SELECT deals.created_at, deals.id,
			                row_number() OVER (ORDER BY deals.created_at DESC, deals.id DESC) AS n
			         FROM deals WHERE %s
			         ORDER BY deals.created_at DESC, deals.id DESC LIMIT $%d) k
			WHERE %s
			ORDER BY k.created_at DESC, k.id DESC LIMIT $%d
		) page ON page.id = deals.id
		ORDER BY deals.created_at DESC, deals.id DESC`, dealColumnsOf("deals"), p, inner, p, grantWhere, w), args
}

// dealConditions appends the status filter and the keyset position to a
// deals query, adding their arguments to args.
func dealConditions(args *[]any, status deal.Status, pos *position) string {
	cond := ""
	if status != "" {
		*args = append(*args, string(status))
		cond += fmt.Sprintf(" AND deals.status = $%d", len(*args))
	}
	if pos != nil {
		*args = append(*args, pos.At, pos.ID)
		cond += fmt.Sprintf(" AND (deals.created_at, deals.id) < ($%d, $%d)", len(*args)-1, len(*args))
	}
	return cond
}

// listDeals runs a deal list query fetching limit+1 rows and makes the page.
func (s *Store) listDeals(ctx context.Context, query string, args []any, limit int) (Page[deal.Deal], error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return Page[deal.Deal]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deal.Deal, error) { return scanDeal(r) })
	if err != nil {
		return Page[deal.Deal]{}, translate(err)
	}
	return pageOf(list, limit, func(d deal.Deal) position { return position{At: d.CreatedAt, ID: d.ID} }), nil
}

// DeleteExpiredIdempotencyKeys removes keys older than IdempotencyTTL and
// returns how many went. Expired keys are already ignored by CreateDeal;
// this only keeps the table small.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, s.timestamp().Add(-IdempotencyTTL))
	return tag.RowsAffected(), translate(err)
}
