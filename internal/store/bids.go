package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealcast/dealcast/internal/auction"
)

const (
	// maxBidsPerTx bounds how many queued bids one transaction decides.
	maxBidsPerTx = 64
	// bidTxTimeout bounds a transaction deciding a batch, retries included.
	bidTxTimeout = 30 * time.Second
)

// bidQueue lines up this process's bids on each auction. One transaction
// at a time per auction decides every bid waiting for it, in arrival
// order, under one row lock and one commit. Without it, each of many
// concurrent bids holds or waits for the auction's lock in a transaction
// of its own, and under SERIALIZABLE every waiter fails with 40001 when
// the holder commits and starts again: a hot auction spent most of its
// time in retries. Other processes' bids still queue on the row lock, so
// the database stays the judge.
type bidQueue struct {
	mu sync.Mutex
	// waiting holds the undecided bids of each auction that has a leader:
	// the bid whose request is running a transaction for it.
	waiting map[string][]*queuedBid
}

type queuedBid struct {
	req  PlaceBidRequest
	res  BidResult
	err  error
	lead chan struct{} // this bid's request is to run the next transaction
	done chan struct{} // res and err are set
}

// BidResult is an accepted bid (or the replay of one), the auction after
// it and its events.
type BidResult struct {
	Bid      auction.Bid
	Replayed bool
	Events   []EventRef
}

// PlaceBid decides a bid in a serializable transaction that holds the
// auction's row lock, so bids and the close are linearised by commit:
// ErrNotFound unless the seller authorises the buyer, ErrAuctionNotOpen
// unless the auction is open by the database's clock, *BidTooLowError
// under the minimum. An accepted bid becomes the best, may move closes_at
// (extend_seconds), and writes bid.placed to the seller, bid.outbid to the
// buyer it displaced and auction.updated to everyone. A refused bid
// writes nothing. Bids on one auction that arrive while a transaction is
// deciding earlier ones are decided together by the next, in arrival
// order, each exactly as it would be alone.
//
// Once queued, a bid is decided even if ctx ends: like a transaction
// whose answer is lost, the buyer learns the outcome by repeating the
// request with its Idempotency-Key.
func (s *Store) PlaceBid(ctx context.Context, r PlaceBidRequest) (BidResult, error) {
	// The bidder in the form the database returns IDs, so the batch's
	// lookups match it as it is; anything else is no grant's buyer.
	if u, err := uuid.Parse(r.Buyer); err == nil {
		r.Buyer = u.String()
	} else {
		return BidResult{}, ErrNotFound
	}
	b := &queuedBid{req: r, lead: make(chan struct{}, 1), done: make(chan struct{})}
	q := &s.bids
	q.mu.Lock()
	waiting, led := q.waiting[r.AuctionID]
	q.waiting[r.AuctionID] = append(waiting, b)
	q.mu.Unlock()
	if !led {
		b.lead <- struct{}{}
	}
	select {
	case <-b.lead:
		// The batch is other requests' too: it must not end with this one.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bidTxTimeout)
		s.leadBids(bctx, r.AuctionID)
		cancel()
	case <-b.done:
	}
	<-b.done
	return b.res, b.err
}

// leadBids decides the bids at the head of the auction's queue (the
// leader's own first), then hands the lead to the next waiting bid.
func (s *Store) leadBids(ctx context.Context, auctionID string) {
	q := &s.bids
	q.mu.Lock()
	waiting := q.waiting[auctionID]
	n := min(len(waiting), maxBidsPerTx)
	batch := waiting[:n:n]
	q.waiting[auctionID] = waiting[n:]
	q.mu.Unlock()

	if err := s.decideBids(ctx, auctionID, batch); err != nil {
		for _, b := range batch {
			b.res, b.err = BidResult{}, err
		}
	}

	q.mu.Lock()
	if rest := q.waiting[auctionID]; len(rest) > 0 {
		rest[0].lead <- struct{}{}
	} else {
		delete(q.waiting, auctionID)
	}
	q.mu.Unlock()
	for _, b := range batch {
		close(b.done)
	}
}

// decideBids decides batch, bids on one auction in arrival order, in one
// serializable transaction. A bid's own refusal is its err; an error
// returned fails them all (nothing was written).
func (s *Store) decideBids(ctx context.Context, auctionID string, batch []*queuedBid) error {
	err := errKeyRaced
	for attempt := 0; attempt < 3 && errors.Is(err, errKeyRaced); attempt++ {
		err = s.decideBidsOnce(ctx, auctionID, batch)
	}
	return err
}

func (s *Store) decideBidsOnce(ctx context.Context, auctionID string, batch []*queuedBid) error {
	return s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		s.bidTxs.Add(1)
		a, now, err := lockAuction(ctx, tx, auctionID, "TRUE")
		if errors.Is(err, pgx.ErrNoRows) {
			for _, b := range batch {
				b.res, b.err = BidResult{}, ErrNotFound
			}
			return nil
		}
		if err != nil {
			return err
		}
		granted, err := grantedBuyers(ctx, tx, a.Seller, batch)
		if err != nil {
			return err
		}
		recorded, err := recordedResponses(ctx, tx, batch, granted, now)
		if err != nil {
			return err
		}
		version := a.Version
		for _, b := range batch {
			b.res, b.err = BidResult{}, nil
			if !granted[b.req.Buyer] {
				b.err = ErrNotFound
				continue
			}
			if a, err = s.decideBid(ctx, tx, a, now, b, recorded); err != nil {
				return err
			}
		}
		if a.Version == version {
			return nil // every bid refused or replayed: nothing changed
		}
		return writeAuction(ctx, tx, a)
	})
}

// grantedBuyers returns which of the batch's bidders the seller authorises.
func grantedBuyers(ctx context.Context, tx pgx.Tx, seller string, batch []*queuedBid) (map[string]bool, error) {
	ids := make([]string, len(batch))
	for i, b := range batch {
		ids[i] = b.req.Buyer
	}
	granted := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT buyer_id::TEXT FROM grants WHERE seller_id = $1 AND buyer_id = ANY($2::UUID[])`, seller, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		granted[id] = true
	}
	return granted, rows.Err()
}

// decideBid decides one bid on a (the auction as the bids before it in the
// transaction left it) and returns the auction after it. recorded holds
// the live keys of the batch's bidders. The bid's refusal is b.err; a
// returned error fails the transaction.
func (s *Store) decideBid(ctx context.Context, tx pgx.Tx, a auction.Auction, now time.Time, b *queuedBid, recorded map[recordKey]record) (auction.Auction, error) {
	r := b.req
	hash := sha256.Sum256(r.Idem.Request)
	if rec, ok := recorded[recordKey{r.Buyer, r.Idem.Key}]; ok {
		if rec.hash != string(hash[:]) {
			b.err = ErrIdempotencyConflict
			return a, nil
		}
		b.res.Replayed = true
		return a, json.Unmarshal(rec.response, &b.res.Bid)
	}
	// A refused bid leaves no key: repeated, it is decided again.
	if !a.Status.Live() || now.Before(a.OpensAt) || !now.Before(a.ClosesAt) {
		b.err = ErrAuctionNotOpen
		return a, nil
	}
	if min := a.Minimum(); r.Amount < min {
		b.err = &BidTooLowError{Minimum: min}
		return a, nil
	}

	// Strictly after the auction's last change, so placed_at orders the
	// bids as their commits do.
	placed := now
	if !placed.After(a.UpdatedAt) {
		placed = a.UpdatedAt.Add(time.Microsecond)
	}
	bid := auction.Bid{ID: uuid.NewString(), AuctionID: a.ID, Amount: r.Amount, PlacedAt: placed, Leading: true}
	response, err := json.Marshal(bid)
	if err != nil {
		return a, err
	}
	next := a
	next.BidCount++
	next.BestBid, next.Leader = &r.Amount, &r.Buyer
	next.ClosesAt = a.Extended(placed)
	next.Status = auction.StatusOpen
	next.Version++
	next.UpdatedAt = placed
	next.Refresh()
	// The key, the bid and its events in one round trip under the lock.
	writes := &pgx.Batch{}
	writes.Queue(claimKeySQL, r.Buyer, r.Idem.Key, hash[:], response, now, now.Add(-IdempotencyTTL))
	writes.Queue(`INSERT INTO bids (id, auction_id, buyer_id, seq, amount, placed_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		bid.ID, a.ID, r.Buyer, next.BidCount, r.Amount, placed)
	events, err := bidEvents(ctx, queued{writes}, a, next, bid, r.Buyer, placed)
	if err != nil {
		return a, err
	}
	if err := sendClaiming(ctx, tx, writes); err != nil {
		return a, err
	}
	b.res.Bid, b.res.Events = bid, events
	// A repeat of this request later in the batch replays it.
	recorded[recordKey{r.Buyer, r.Idem.Key}] = record{hash: string(hash[:]), response: response}
	return next, nil
}

type recordKey struct{ account, key string }

type record struct {
	hash     string
	response []byte
}

// recordedResponses reads, in one query, the live idempotency records of
// the keys of the batch's authorised bidders.
func recordedResponses(ctx context.Context, tx pgx.Tx, batch []*queuedBid, granted map[string]bool, now time.Time) (map[recordKey]record, error) {
	var accounts, keys []string
	for _, b := range batch {
		if granted[b.req.Buyer] {
			accounts, keys = append(accounts, b.req.Buyer), append(keys, b.req.Idem.Key)
		}
	}
	recorded := map[recordKey]record{}
	if len(keys) == 0 {
		return recorded, nil
	}
	// Every pair of the two lists matches; a bid looks up its own pair only.
	rows, err := tx.Query(ctx, `SELECT seller_id::TEXT, key, request_hash, response::TEXT FROM idempotency_keys
		WHERE seller_id = ANY($1::UUID[]) AND key = ANY($2::TEXT[]) AND created_at >= $3`, accounts, keys, now.Add(-IdempotencyTTL))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k recordKey
		var hash, response []byte
		if err := rows.Scan(&k.account, &k.key, &hash, &response); err != nil {
			return nil, err
		}
		recorded[k] = record{hash: string(hash), response: response}
	}
	return recorded, rows.Err()
}

// recordedResponse returns the live response recorded for account's key,
// if any, or ErrIdempotencyConflict when it was for another request.
func recordedResponse(ctx context.Context, tx pgx.Tx, account string, idem *Idempotency, now time.Time) (response []byte, found bool, err error) {
	var storedHash []byte
	err = tx.QueryRow(ctx, `SELECT request_hash, response::TEXT FROM idempotency_keys
		WHERE seller_id = $1 AND key = $2 AND created_at >= $3`, account, idem.Key, now.Add(-IdempotencyTTL)).Scan(&storedHash, &response)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if hash := sha256.Sum256(idem.Request); string(storedHash) != string(hash[:]) {
		return nil, false, ErrIdempotencyConflict
	}
	return response, true, nil
}

// queued is an execer that queues each statement on a batch, to be sent
// in one round trip; its results are read by sendClaiming.
type queued struct{ *pgx.Batch }

func (q queued) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

// errKeyRaced is a bid's key claimed by another transaction after this one
// read the keys: the batch's writes must not stand, so the transaction is
// run again and reads the claim. Under SERIALIZABLE that claim is a 40001
// instead; this keeps a weaker isolation from storing a bid under another
// request's key.
var errKeyRaced = errors.New("idempotency key claimed concurrently")

// sendClaiming sends writes, whose first statement claims a key with
// claimKeySQL, in one round trip, and fails with errKeyRaced unless it
// claimed it.
func sendClaiming(ctx context.Context, tx pgx.Tx, writes *pgx.Batch) error {
	results := tx.SendBatch(ctx, writes)
	tag, err := results.Exec()
	if err == nil && tag.RowsAffected() != 1 {
		err = errKeyRaced
	}
	for i := 1; i < writes.Len() && err == nil; i++ {
		_, err = results.Exec()
	}
	return errors.Join(err, results.Close())
}
