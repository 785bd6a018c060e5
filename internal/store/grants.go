package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Grant is a seller's permission for one buyer to see its deals.
type Grant struct {
	Account   Account // the other party: the buyer for a seller's list, the seller for a buyer's
	GrantedAt time.Time
}

// PutGrant lets buyer see seller's deals. Granting twice changes nothing.
// ErrNotFound when either account is missing.
func (s *Store) PutGrant(ctx context.Context, seller, buyer string) error {
	_, err := s.exec(ctx,
		`INSERT INTO grants (seller_id, buyer_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (seller_id, buyer_id) DO NOTHING`,
		seller, buyer, s.timestamp())
	return translate(err)
}

// DeleteGrant revokes buyer's access to seller's deals. Revoking an absent
// grant is not an error: the outcome the caller wants already holds.
func (s *Store) DeleteGrant(ctx context.Context, seller, buyer string) error {
	_, err := s.exec(ctx, `DELETE FROM grants WHERE seller_id = $1 AND buyer_id = $2`, seller, buyer)
	return translate(err)
}

// GrantedBuyers lists the buyers seller authorised, by buyer ID.
func (s *Store) GrantedBuyers(ctx context.Context, seller, cursor string, limit int) (Page[Grant], error) {
	return s.grants(ctx, `
		SELECT b.id::TEXT, b.name, b.created_at, g.created_at
		FROM grants g JOIN buyers b ON b.id = g.buyer_id
		WHERE g.seller_id = $1 AND g.buyer_id > $2
		ORDER BY g.buyer_id LIMIT $3`, seller, cursor, limit)
}

// GrantingSellers lists the sellers that authorised buyer, by seller ID.
func (s *Store) GrantingSellers(ctx context.Context, buyer, cursor string, limit int) (Page[Grant], error) {
	return s.grants(ctx, `
		SELECT sl.id::TEXT, sl.name, sl.created_at, g.created_at
		FROM grants g JOIN sellers sl ON sl.id = g.seller_id
		WHERE g.buyer_id = $1 AND g.seller_id > $2
		ORDER BY g.seller_id LIMIT $3`, buyer, cursor, limit)
}

func (s *Store) grants(ctx context.Context, query, owner, cursor string, limit int) (Page[Grant], error) {
	after := zeroUUID
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[Grant]{}, err
	}
	if pos != nil {
		after = pos.ID
	}
	rows, err := s.pool.Query(ctx, query, owner, after, limit+1)
	if err != nil {
		return Page[Grant]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Grant, error) {
		var g Grant
		err := r.Scan(&g.Account.ID, &g.Account.Name, &g.Account.CreatedAt, &g.GrantedAt)
		g.Account.CreatedAt, g.GrantedAt = g.Account.CreatedAt.UTC(), g.GrantedAt.UTC()
		return g, err
	})
	if err != nil {
		return Page[Grant]{}, translate(err)
	}
	return pageOf(list, limit, func(g Grant) position { return position{ID: g.Account.ID} }), nil
}
