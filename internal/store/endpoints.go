package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint is a buyer's or a seller's webhook endpoint. Secrets are sealed
// bytes: the store never sees a secret in the clear.
type Endpoint struct {
	ID                      string
	Owner                   Viewer
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

const endpointColumns = `id::TEXT, COALESCE(buyer_id, seller_id)::TEXT, ` + ownerRoleColumn + `, url, description, event_types, enabled, disabled_reason,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.Owner.ID, &e.Owner.Role, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason,
		&e.Secret, &e.PreviousSecret, &e.PreviousSecretExpiresAt, &e.CreatedAt, &e.UpdatedAt)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if e.PreviousSecretExpiresAt != nil {
		t := e.PreviousSecretExpiresAt.UTC()
		e.PreviousSecretExpiresAt = &t
	}
	return e, err
}

// CreateEndpoint stores a new endpoint; ID, owner, URL, types and sealed
// secret must be set.
func (s *Store) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	now := s.timestamp()
	e.CreatedAt, e.UpdatedAt, e.Enabled = now, now, true
	buyer, seller := ownerColumns(e.Owner)
	_, err := s.exec(ctx, `
		INSERT INTO webhook_endpoints (id, buyer_id, seller_id, url, description, event_types, enabled, secret, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, true, $7, $8, $9)`,
		e.ID, buyer, seller, e.URL, e.Description, e.EventTypes, e.Secret, now, now)
	return e, translate(err)
}

// Endpoint returns one of owner's endpoints.
func (s *Store) Endpoint(ctx context.Context, owner Viewer, id string) (Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 AND `+ownerColumn(owner)+` = $2`, id, owner.ID))
	return e, translate(err)
}

// Endpoints lists owner's endpoints by ID.
func (s *Store) Endpoints(ctx context.Context, owner Viewer, cursor string, limit int) (Page[Endpoint], error) {
	after := zeroUUID
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[Endpoint]{}, err
	}
	if pos != nil {
		after = pos.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE `+ownerColumn(owner)+` = $1 AND webhook_endpoints.id > $2 ORDER BY webhook_endpoints.id LIMIT $3`, owner.ID, after, limit+1)
	if err != nil {
		return Page[Endpoint]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return Page[Endpoint]{}, translate(err)
	}
	return pageOf(list, limit, func(e Endpoint) position { return position{ID: e.ID} }), nil
}

// UpdateEndpoint changes one of owner's endpoints with change, which sees
// the current row and may return an error to abort.
func (s *Store) UpdateEndpoint(ctx context.Context, owner Viewer, id string, change func(*Endpoint) error) (Endpoint, error) {
	var out Endpoint
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 AND `+ownerColumn(owner)+` = $2 FOR UPDATE`, id, owner.ID))
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

// DeleteEndpoint removes one of owner's endpoints; its delivery log stays.
func (s *Store) DeleteEndpoint(ctx context.Context, owner Viewer, id string) error {
	tag, err := s.exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND `+ownerColumn(owner)+` = $2`, id, owner.ID)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return translate(err)
}

// ownerRoleColumn reads which kind of account owns an endpoint or delivery row.
const ownerRoleColumn = `CASE WHEN seller_id IS NULL THEN 'buyer' ELSE 'seller' END`

// ownerColumn is the column that names owner's endpoints and deliveries;
// anything but a seller is looked up as a buyer.
func ownerColumn(owner Viewer) string {
	if owner.Role == RoleSeller {
		return "seller_id"
	}
	return "buyer_id"
}

// ownerColumns are the buyer_id and seller_id values of a row of owner's.
func ownerColumns(owner Viewer) (buyer, seller *string) {
	id := owner.ID
	if owner.Role == RoleSeller {
		return nil, &id
	}
	return &id, nil
}
