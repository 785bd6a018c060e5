package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Delivery is the state of one event's delivery to one endpoint.
type Delivery struct {
	ID             string
	EventID        string
	EndpointID     string
	OwnerID        string
	EventType      string
	Status         string
	Attempts       int
	LastStatusCode *int
	LastError      *string
	NextAttemptAt  *time.Time
	DeliveredAt    *time.Time
	CreatedAt      time.Time
}

const deliveryColumns = `id::TEXT, event_id, endpoint_id::TEXT, COALESCE(buyer_id, seller_id)::TEXT, event_type, status, attempts,
	last_status_code, last_error, next_attempt_at, delivered_at, created_at`

func scanDelivery(row pgx.Row) (Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.EventID, &d.EndpointID, &d.OwnerID, &d.EventType, &d.Status, &d.Attempts,
		&d.LastStatusCode, &d.LastError, &d.NextAttemptAt, &d.DeliveredAt, &d.CreatedAt)
	d.CreatedAt = d.CreatedAt.UTC()
	for _, t := range []**time.Time{&d.NextAttemptAt, &d.DeliveredAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return d, err
}

// DeliveryFilter narrows an account's delivery log.
type DeliveryFilter struct {
	EndpointID string
	EventID    string
	Status     string
}

// Deliveries lists owner's deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, owner Viewer, f DeliveryFilter, cursor string, limit int) (Page[Delivery], error) {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[Delivery]{}, err
	}
	where := []string{ownerColumn(owner) + " = $1"}
	args := []any{owner.ID}
	add := func(cond string, v ...any) {
		args = append(args, v...)
		n := make([]any, len(v))
		for i := range v {
			n[i] = len(args) - len(v) + i + 1
		}
		where = append(where, fmt.Sprintf(cond, n...))
	}
	if f.EndpointID != "" {
		add("endpoint_id = $%d", f.EndpointID)
	}
	if f.EventID != "" {
		add("event_id = $%d", f.EventID)
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if pos != nil {
		add("(webhook_deliveries.created_at, webhook_deliveries.id) < ($%d, $%d)", pos.At, pos.ID)
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM webhook_deliveries WHERE %s ORDER BY webhook_deliveries.created_at DESC, webhook_deliveries.id DESC LIMIT $%d`,
		deliveryColumns, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return Page[Delivery]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return Page[Delivery]{}, translate(err)
	}
	return pageOf(list, limit, func(d Delivery) position { return position{At: d.CreatedAt, ID: d.ID} }), nil
}

// DeliveryFor returns one of owner's deliveries.
func (s *Store) DeliveryFor(ctx context.Context, owner Viewer, id string) (Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1 AND `+ownerColumn(owner)+` = $2`, id, owner.ID))
	return d, translate(err)
}

// RequeueDelivery sets one of owner's deliveries back to pending, due now,
// so the next delivery round sends it again.
func (s *Store) RequeueDelivery(ctx context.Context, owner Viewer, id string) (Delivery, error) {
	now := s.timestamp()
	var d Delivery
	err := crdb.ExecuteCtx(ctx, func(ctx context.Context, _ ...any) error {
		var err error
		d, err = scanDelivery(s.pool.QueryRow(ctx, `
			UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, updated_at = $3
			WHERE id = $1 AND `+ownerColumn(owner)+` = $2
			RETURNING `+deliveryColumns, id, owner.ID, now))
		return err
	})
	return d, translate(err)
}

// RestoreDelivery puts back the status and due time a delivery had before
// RequeueDelivery, when no round could be started to act on the requeue:
// otherwise it would show "pending" with nothing left to attempt it. It
// leaves a delivery that a round has touched since alone.
func (s *Store) RestoreDelivery(ctx context.Context, before Delivery, requeuedAt time.Time) error {
	_, err := s.exec(ctx, `
		UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3
		WHERE id = $1 AND status = 'pending' AND next_attempt_at = $4`,
		before.ID, before.Status, before.NextAttemptAt, requeuedAt)
	return translate(err)
}
