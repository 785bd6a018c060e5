package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint is a buyer's webhook endpoint. Secrets are sealed bytes: the
// store never sees a secret in the clear.
type Endpoint struct {
	ID                      string
	BuyerID                 string
	URL                     string
	Description             string
	EventTypes              []string
	Enabled                 bool
	DisabledReason          *string
	Secret                  []byte
	PreviousSecret          []byte
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

const endpointColumns = `id::TEXT, buyer_id::TEXT, url, description, event_types, enabled, disabled_reason,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.BuyerID, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason,
		&e.Secret, &e.PreviousSecret, &e.PreviousSecretExpiresAt, &e.CreatedAt, &e.UpdatedAt)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if e.PreviousSecretExpiresAt != nil {
		t := e.PreviousSecretExpiresAt.UTC()
		e.PreviousSecretExpiresAt = &t
	}
	return e, err
}

// CreateEndpoint stores a new endpoint; ID, buyer, URL, types and sealed
// secret must be set.
func (s *Store) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	now := s.timestamp()
	e.CreatedAt, e.UpdatedAt, e.Enabled = now, now, true
	_, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_endpoints (id, buyer_id, url, description, event_types, enabled, secret, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8)`,
		e.ID, e.BuyerID, e.URL, e.Description, e.EventTypes, e.Secret, now, now)
	return e, translate(err)
}

// Endpoint returns one of buyer's endpoints.
func (s *Store) Endpoint(ctx context.Context, buyer, id string) (Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 AND buyer_id = $2`, id, buyer))
	return e, translate(err)
}

// Endpoints lists buyer's endpoints by ID.
func (s *Store) Endpoints(ctx context.Context, buyer, cursor string, limit int) (Page[Endpoint], error) {
	after := zeroUUID
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[Endpoint]{}, err
	}
	if pos != nil {
		after = pos.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE buyer_id = $1 AND webhook_endpoints.id > $2 ORDER BY webhook_endpoints.id LIMIT $3`, buyer, after, limit+1)
	if err != nil {
		return Page[Endpoint]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return Page[Endpoint]{}, translate(err)
	}
	return pageOf(list, limit, func(e Endpoint) position { return position{ID: e.ID} }), nil
}

// UpdateEndpoint changes one of buyer's endpoints with change, which sees
// the current row and may return an error to abort.
func (s *Store) UpdateEndpoint(ctx context.Context, buyer, id string, change func(*Endpoint) error) (Endpoint, error) {
	var out Endpoint
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 AND buyer_id = $2 FOR UPDATE`, id, buyer))
		if err != nil {
			return err
		}
		if err := change(&e); err != nil {
			return err
		}
		if e.Enabled {
			e.DisabledReason = nil
		}
		e.UpdatedAt = s.timestamp()
		_, err = tx.Exec(ctx, `
			UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, enabled = $5, disabled_reason = $6,
			       secret = $7, previous_secret = $8, previous_secret_expires_at = $9, updated_at = $10
			WHERE id = $1`,
			e.ID, e.URL, e.Description, e.EventTypes, e.Enabled, e.DisabledReason,
			e.Secret, e.PreviousSecret, e.PreviousSecretExpiresAt, e.UpdatedAt)
		out = e
		return err
	})
	return out, err
}

// DeleteEndpoint removes one of buyer's endpoints; its delivery log stays.
func (s *Store) DeleteEndpoint(ctx context.Context, buyer, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND buyer_id = $2`, id, buyer)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return translate(err)
}
