package store

import (
	"context"
	"strings"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
)

// EventRecord is an outbox row as delivery needs it: the payload exactly as
// stored, so every attempt sends the same bytes.
type EventRecord struct {
	ID       string
	Type     string
	DealID   string
	SellerID string
	// Named events go to the accounts of event_recipients; the others to
	// every buyer the seller authorises.
	Named     bool
	Payload   []byte
	CreatedAt time.Time
}

// Target is one endpoint an event goes to, with what sending needs.
type Target struct {
	EndpointID string
	// OwnerID and OwnerRole are the buyer or seller the endpoint belongs to.
	OwnerID                 string
	OwnerRole               Role
	URL                     string
	Secret                  []byte // sealed
	PreviousSecret          []byte // sealed; nil unless within its grace period
	PreviousSecretExpiresAt *time.Time
	// Attempts made so far (0 on the first round).
	Attempts int
	// Cancelled explains why a pending delivery must not be attempted any
	// more (grant revoked, endpoint disabled or deleted); empty when it may.
	Cancelled string
}

// Attempt is the outcome of sending one event to one endpoint.
type Attempt struct {
	EndpointID    string
	OwnerID       string
	OwnerRole     Role
	Status        string // DeliveryPending (will retry), DeliverySucceeded or DeliveryFailed
	StatusCode    *int32
	Error         *string
	NextAttemptAt *time.Time
	// Counted is false for a delivery cancelled without an attempt.
	Counted bool
	// Gone asks for the endpoint to be disabled (it answered 410).
	Gone bool
}

// Event returns the outbox row with id.
func (s *Store) Event(ctx context.Context, id string) (EventRecord, error) {
	evs, err := s.Events(ctx, []string{id})
	if err != nil {
		return EventRecord{}, err
	}
	if len(evs) == 0 {
		return EventRecord{}, ErrNotFound
	}
	return evs[0], nil
}

// Events returns the outbox rows of ids that exist, in no set order.
func (s *Store) Events(ctx context.Context, ids []string) ([]EventRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, type, deal_id::TEXT, seller_id::TEXT, named, payload::TEXT, created_at FROM events WHERE id = ANY ($1::TEXT[])`, ids)
	if err != nil {
		return nil, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EventRecord, error) {
		var e EventRecord
		err := r.Scan(&e.ID, &e.Type, &e.DealID, &e.SellerID, &e.Named, &e.Payload, &e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	return list, translate(err)
}

// Recipients returns up to limit enabled endpoints subscribed to ev's type
// of buyers that ev's seller authorises now, in (buyer, endpoint) order
// after the cursor after (RecipientsCursor of the last one of the previous
// page; empty for the first), leaving out endpoints this event already
// reached or gave up on (a repeated round resumes rather than resends).
func (s *Store) Recipients(ctx context.Context, ev EventRecord, after string, limit int) ([]Target, error) {
	return s.targets(ctx, s.recipientsQuery(ev, after, "", limit))
}

// recipientsQuery is the query of Recipients.
// With upto (a cursor, empty for none) the page ends at that recipient.
func (s *Store) recipientsQuery(ev EventRecord, after, upto string, limit int) targetsQuery {
	if ev.Named {
		return s.namedRecipientsQuery(ev, after, limit)
	}
	uptoBuyer, uptoEndpoint := recipientCursor(upto, maxUUID)
	// A cursor without a buyer was written when pages went by endpoint ID
	// alone: the listing starts again, and only the deliveries still
	// pending of the pages already done are sent once more.
	afterBuyer, afterEndpoint := recipientCursor(after, zeroUUID)
	// Driven by the seller's grants in buyer order, each buyer's endpoints
	// read from its index (a LATERAL subquery with a LIMIT is always run per
	// grant), so a page costs what it returns plus the grants it passes,
	// whatever the planner estimates. Ordered by endpoint ID instead, the
	// planner may walk every endpoint of the platform for sellers whose
	// buyers have none, or read all of a big seller's endpoints for every
	// page. Finished deliveries are
	// left out before the per-buyer limit, so a page never skips any; the
	// one probe of an endpoint's delivery row both leaves it out and reads
	// the attempts of a pending one.
	return targetsQuery{sql: `
		SELECT e.id::TEXT, e.buyer_id::TEXT, 'buyer', e.url, e.secret,
		       CASE WHEN e.previous_secret_expires_at > $5 THEN e.previous_secret END, e.previous_secret_expires_at,
		       e.attempts
		FROM grants g
		CROSS JOIN LATERAL (
		  SELECT e.id, e.buyer_id, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at,
		         COALESCE(d.attempts, 0) AS attempts
		  FROM webhook_endpoints e
		  LEFT JOIN webhook_deliveries d ON d.event_id = $2 AND d.endpoint_id = e.id
		  WHERE e.buyer_id = g.buyer_id AND e.enabled AND $3 = ANY (e.event_types)
		    AND (g.buyer_id > $4 OR e.id > $7) AND (g.buyer_id < $8 OR e.id <= $9)
		    AND (d.status IS NULL OR d.status = 'pending')
		  ORDER BY e.id
		  LIMIT $6
		) e
		WHERE g.seller_id = $1 AND g.buyer_id >= $4 AND g.buyer_id <= $8
		ORDER BY g.buyer_id, e.id
		LIMIT $6`,
		args: []any{ev.SellerID, ev.ID, ev.Type, afterBuyer, s.timestamp(), limit, afterEndpoint, uptoBuyer, uptoEndpoint}}
}

// RecipientCuts splits the Recipients of ev after the cursor after into
// runs of every recipients: it returns the cursor of every every-th one,
// so pages bounded by them can be sent in parallel. Events to named
// accounts, which go to a handful, have none.
func (s *Store) RecipientCuts(ctx context.Context, ev EventRecord, after string, every int) ([]string, error) {
	if ev.Named || every <= 0 {
		return nil, nil
	}
	afterBuyer, afterEndpoint := recipientCursor(after, zeroUUID)
	rows, err := s.pool.Query(ctx, `
		SELECT c FROM (
		  SELECT g.buyer_id::TEXT || '/' || e.id::TEXT AS c, row_number() OVER (ORDER BY g.buyer_id, e.id) AS n
		  FROM grants g
		  JOIN webhook_endpoints e ON e.buyer_id = g.buyer_id
		  WHERE g.seller_id = $1 AND g.buyer_id >= $3 AND (g.buyer_id > $3 OR e.id > $4)
		    AND e.enabled AND $2 = ANY (e.event_types)
		) r
		WHERE n % $5 = 0
		ORDER BY n`,
		ev.SellerID, ev.Type, afterBuyer, afterEndpoint, every)
	if err != nil {
		return nil, translate(err)
	}
	cuts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return cuts, translate(err)
}

// namedRecipientsQuery lists the Recipients of an event addressed to named accounts:
// the enabled, subscribed endpoints of each, whatever the grants say (an
// invoice reaches its buyer even after the seller revoked the grant).
func (s *Store) namedRecipientsQuery(ev EventRecord, after string, limit int) targetsQuery {
	afterOwner, afterEndpoint := recipientCursor(after, zeroUUID)
	return targetsQuery{sql: `
		SELECT e.id::TEXT, r.account_id::TEXT, e.role, e.url, e.secret,
		       CASE WHEN e.previous_secret_expires_at > $4 THEN e.previous_secret END, e.previous_secret_expires_at,
		       COALESCE(d.attempts, 0)
		FROM event_recipients r
		CROSS JOIN LATERAL (
		  SELECT w.*, 'buyer' AS role FROM webhook_endpoints w WHERE w.buyer_id = r.account_id
		  UNION ALL
		  SELECT w.*, 'seller' AS role FROM webhook_endpoints w WHERE w.seller_id = r.account_id
		) e
		LEFT JOIN webhook_deliveries d ON d.event_id = $1 AND d.endpoint_id = e.id
		WHERE r.event_id = $1 AND e.enabled AND $2 = ANY (e.event_types)
		  AND (d.status IS NULL OR d.status = 'pending')
		  AND (r.account_id, e.id) > ($3::UUID, $6::UUID)
		ORDER BY r.account_id, e.id
		LIMIT $5`,
		args: []any{ev.ID, ev.Type, afterOwner, s.timestamp(), limit, afterEndpoint}}
}

// targetsQuery is a query of Recipients or PendingTargets; cancelled marks
// the latter, whose rows end with their cancellation reason.
type targetsQuery struct {
	sql       string
	args      []any
	cancelled bool
}

func (s *Store) targets(ctx context.Context, q targetsQuery) ([]Target, error) {
	rows, err := s.pool.Query(ctx, q.sql, q.args...)
	if err != nil {
		return nil, translate(err)
	}
	return collectTargets(rows, q.cancelled)
}

// PageQuery asks for one page of one delivery round of an event: its
// pending deliveries when Retry is set, else its recipients.
type PageQuery struct {
	Event EventRecord
	Retry bool
	After string
	// Upto ends a page of recipients at that cursor (RecipientCuts).
	Upto  string
	Limit int
}

// Pages returns the targets of several pages (PendingTargets or
// Recipients of each), in their order, in one round trip.
func (s *Store) Pages(ctx context.Context, pages []PageQuery) ([][]Target, error) {
	b := &pgx.Batch{}
	qs := make([]targetsQuery, len(pages))
	for i, p := range pages {
		if p.Retry {
			qs[i] = s.pendingQuery(p.Event, p.After, p.Limit)
		} else {
			qs[i] = s.recipientsQuery(p.Event, p.After, p.Upto, p.Limit)
		}
		b.Queue(qs[i].sql, qs[i].args...)
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	out := make([][]Target, len(pages))
	for i, q := range qs {
		rows, err := br.Query()
		if err != nil {
			return nil, translate(err)
		}
		if out[i], err = collectTargets(rows, q.cancelled); err != nil {
			return nil, err
		}
	}
	return out, translate(br.Close())
}

// collectTargets reads the rows of Recipients and PendingTargets, the
// latter with their cancellation reason.
func collectTargets(rows pgx.Rows, cancelled bool) ([]Target, error) {
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Target, error) {
		var t Target
		dest := []any{&t.EndpointID, &t.OwnerID, &t.OwnerRole, &t.URL, &t.Secret, &t.PreviousSecret, &t.PreviousSecretExpiresAt, &t.Attempts}
		if cancelled {
			dest = append(dest, &t.Cancelled)
		}
		err := r.Scan(dest...)
		return t, err
	})
	return list, translate(err)
}

// recipientCursor splits a RecipientsCursor into its owner and endpoint
// IDs; a cursor of another form (empty, or of the endpoint-only pages of
// old) stands for (none, none).
func recipientCursor(c, none string) (owner, endpoint string) {
	owner, endpoint, ok := strings.Cut(c, "/")
	if !ok {
		return none, none
	}
	return owner, endpoint
}

// RecipientsCursor is where the page of Recipients that ended with t
// continues.
func RecipientsCursor(t Target) string { return t.OwnerID + "/" + t.EndpointID }

// PendingTargets returns, by endpoint ID after after, up to limit of ev's
// deliveries still pending, each re-checked against the grant and the
// endpoint as they are now.
func (s *Store) PendingTargets(ctx context.Context, ev EventRecord, after string, limit int) ([]Target, error) {
	return s.targets(ctx, s.pendingQuery(ev, after, limit))
}

// pendingQuery is the query of PendingTargets.
func (s *Store) pendingQuery(ev EventRecord, after string, limit int) targetsQuery {
	if after == "" {
		after = zeroUUID
	}
	return targetsQuery{cancelled: true, sql: `
		SELECT d.endpoint_id::TEXT, COALESCE(d.buyer_id, d.seller_id)::TEXT,
		       CASE WHEN d.seller_id IS NULL THEN 'buyer' ELSE 'seller' END, COALESCE(e.url, ''), e.secret,
		       CASE WHEN e.previous_secret_expires_at > $4 THEN e.previous_secret END, e.previous_secret_expires_at,
		       d.attempts,
		       CASE
		         WHEN e.id IS NULL THEN 'endpoint deleted'
		         WHEN NOT e.enabled THEN 'endpoint disabled'
		         WHEN NOT ($5 = ANY (e.event_types)) THEN 'endpoint unsubscribed from ' || $5
		         WHEN NOT $7 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = $2 AND g.buyer_id = d.buyer_id) THEN 'grant revoked'
		         ELSE ''
		       END
		FROM webhook_deliveries d
		LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.event_id = $1 AND d.status = 'pending' AND d.endpoint_id > $3
		ORDER BY d.endpoint_id LIMIT $6`,
		args: []any{ev.ID, ev.SellerID, after, s.timestamp(), ev.Type, limit, ev.Named}}
}

// RecordAttempts writes the outcomes of one delivery round in one
// statement, and disables the endpoints that answered 410 Gone.
func (s *Store) RecordAttempts(ctx context.Context, ev EventRecord, attempts []Attempt) error {
	return s.RecordRounds(ctx, []Round{{Event: ev, Attempts: attempts}})
}

// Round is the outcomes of one page of an event's delivery round.
type Round struct {
	Event    EventRecord
	Attempts []Attempt
}

// RecordRounds writes the outcomes of several events' pages as
// RecordAttempts does, in one statement for them all. No endpoint may
// appear twice for one event.
func (s *Store) RecordRounds(ctx context.Context, rounds []Round) error {
	now := s.timestamp()
	var (
		events, types, endpoints, statuses []string
		buyers, sellers                    []*string
		codes                              []*int32
		errs                               []*string
		next, delivered                    []*time.Time
		counted                            []int32
		gone                               []string
	)
	for _, r := range rounds {
		for _, a := range r.Attempts {
			events, types = append(events, r.Event.ID), append(types, r.Event.Type)
			endpoints = append(endpoints, a.EndpointID)
			buyer, seller := ownerColumns(Viewer{Role: a.OwnerRole, ID: a.OwnerID})
			buyers, sellers = append(buyers, buyer), append(sellers, seller)
			statuses = append(statuses, a.Status)
			codes = append(codes, a.StatusCode)
			errs = append(errs, a.Error)
			next = append(next, a.NextAttemptAt)
			var at *time.Time
			if a.Status == DeliverySucceeded {
				at = &now
			}
			delivered = append(delivered, at)
			c := int32(0)
			if a.Counted {
				c = 1
			}
			counted = append(counted, c)
			if a.Gone {
				gone = append(gone, a.EndpointID)
			}
		}
	}
	if len(endpoints) == 0 {
		return nil
	}
	// One statement: one round trip, atomic without a transaction (the
	// outcomes and the disabling of gone endpoints commit together), and
	// on CockroachDB retried by the server itself; a transaction would add
	// four round trips (BEGIN, the retry savepoint, RELEASE, COMMIT) to
	// every page of every change.
	query, args := recordOutcomes, []any{events, types, now, endpoints, buyers, statuses, codes, errs, next, delivered, counted, sellers}
	if len(gone) > 0 {
		query, args = disableGone+recordOutcomes, append(args, gone)
	}
	return translate(crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
		_, err := s.pool.Exec(ctx, query, args...)
		return err
	}))
}

// recordOutcomes upserts pages' outcomes: a repeated round (an activity
// retry) updates the rows its first try wrote.
const recordOutcomes = `
	INSERT INTO webhook_deliveries (id, event_id, endpoint_id, buyer_id, seller_id, event_type, status, attempts,
	                                last_status_code, last_error, next_attempt_at, delivered_at, created_at, updated_at)
	SELECT gen_random_uuid(), u.event_id, u.endpoint_id, u.buyer_id, u.seller_id, u.event_type, u.status, u.counted,
	       u.code, u.err, u.next_at, u.delivered_at, $3, $3
	FROM unnest($1::TEXT[], $2::TEXT[], $4::UUID[], $5::UUID[], $6::TEXT[], $7::INT[], $8::TEXT[], $9::TIMESTAMPTZ[], $10::TIMESTAMPTZ[], $11::INT[], $12::UUID[])
	     AS u (event_id, event_type, endpoint_id, buyer_id, status, code, err, next_at, delivered_at, counted, seller_id)
	ON CONFLICT (event_id, endpoint_id) DO UPDATE SET
	    status = excluded.status,
	    attempts = webhook_deliveries.attempts + excluded.attempts,
	    last_status_code = COALESCE(excluded.last_status_code, webhook_deliveries.last_status_code),
	    last_error = excluded.last_error,
	    next_attempt_at = excluded.next_attempt_at,
	    delivered_at = COALESCE(webhook_deliveries.delivered_at, excluded.delivered_at),
	    updated_at = excluded.updated_at`

// disableGone prefixes recordOutcomes when endpoints answered 410 Gone
// ($13). A data-modifying WITH runs to completion whether or not the main
// statement reads it, on PostgreSQL and on CockroachDB alike.
const disableGone = `
	WITH gone AS (
	    UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'the endpoint answered 410 Gone', updated_at = $3
	    WHERE id = ANY ($13::UUID[])
	    RETURNING id
	)`

// EventRef names an event to hand to delivery.
type EventRef struct {
	ID     string
	Type   string
	DealID string
	// InvoiceID is the invoice an invoice.* event announces: handing
	// invoice.issued over also starts that invoice's workflow, and
	// invoice.paid or invoice.voided ends it.
	InvoiceID string
	// AuctionID is the auction whose workflow the event concerns: the
	// seller's copy of auction.created starts it; that of the close or the
	// cancellation wakes it.
	AuctionID string
}

// Undispatched returns up to limit events created before olderThan that
// were never handed to delivery, oldest first.
func (s *Store) Undispatched(ctx context.Context, olderThan time.Time, limit int) ([]EventRef, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, type, deal_id::TEXT,
		       CASE WHEN type LIKE 'invoice.%' THEN payload->'data'->'invoice'->>'id' ELSE '' END,
		       CASE WHEN type LIKE 'auction.%' AND named
		                 AND (type = 'auction.created' OR payload->'data'->'auction'->>'status' IN ('closed', 'cancelled'))
		            THEN payload->'data'->'auction'->>'id' ELSE '' END
		FROM events
		WHERE dispatched_at IS NULL AND created_at < $1
		ORDER BY created_at LIMIT $2`, olderThan, limit)
	if err != nil {
		return nil, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EventRef, error) {
		var e EventRef
		err := r.Scan(&e.ID, &e.Type, &e.DealID, &e.InvoiceID, &e.AuctionID)
		return e, err
	})
	return list, translate(err)
}

// MarkDispatched records that delivery has taken these events over.
func (s *Store) MarkDispatched(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.exec(ctx, `UPDATE events SET dispatched_at = $2 WHERE id = ANY ($1::TEXT[]) AND dispatched_at IS NULL`, ids, s.timestamp())
	return translate(err)
}

// Outbox reports the committed events not yet handed to delivery: how
// many, and when the oldest was written (nil when none waits).
func (s *Store) Outbox(ctx context.Context) (waiting int64, oldest *time.Time, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM events WHERE dispatched_at IS NULL`).Scan(&waiting, &oldest)
	return waiting, oldest, translate(err)
}

// PendingDeliveries counts deliveries waiting for a retry: the retry
// queue depth operators watch.
func (s *Store) PendingDeliveries(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&n)
	return n, translate(err)
}

// PostponePending moves the next attempt of the event's pending
// deliveries to until, where that is later than what they show.
func (s *Store) PostponePending(ctx context.Context, eventID string, until time.Time) error {
	_, err := s.exec(ctx, `
		UPDATE webhook_deliveries SET next_attempt_at = $2
		WHERE event_id = $1 AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at < $2)`,
		eventID, until.UTC())
	return translate(err)
}
