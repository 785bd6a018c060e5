package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/store"
)

// WebhookDelivery is the state of one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID             string     `json:"id" format:"uuid"`
	EventID        string     `json:"event_id"`
	EndpointID     string     `json:"endpoint_id" format:"uuid"`
	EventType      string     `json:"event_type" enum:"deal.created,deal.updated"`
	Status         string     `json:"status" enum:"pending,succeeded,failed" doc:"pending: will be retried; succeeded: a 2xx was received; failed: retries ended (schedule over, 410 Gone, grant revoked or endpoint removed)."`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code" doc:"HTTP status of the last attempt; null if none was received."`
	LastError      *string    `json:"last_error" doc:"Why the last attempt failed; null on success."`
	NextAttemptAt  *time.Time `json:"next_attempt_at" doc:"When the next attempt is due, while pending."`
	DeliveredAt    *time.Time `json:"delivered_at" doc:"When a 2xx was first received."`
	CreatedAt      time.Time  `json:"created_at"`
}

func toDelivery(d store.Delivery) WebhookDelivery {
	return WebhookDelivery{ID: d.ID, EventID: d.EventID, EndpointID: d.EndpointID, EventType: d.EventType, Status: d.Status,
		Attempts: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError, NextAttemptAt: d.NextAttemptAt,
		DeliveredAt: d.DeliveredAt, CreatedAt: d.CreatedAt}
}

// ListDeliveriesInput filters the caller's delivery log.
type ListDeliveriesInput struct {
	EndpointID string `query:"endpoint_id" format:"uuid"`
	EventID    string `query:"event_id" maxLength:"64"`
	Status     string `query:"status" enum:"pending,succeeded,failed"`
	Pagination
}

// DeliveryListOutput is a page of deliveries, newest first.
type DeliveryListOutput struct{ Body ListBody[WebhookDelivery] }

// DeliveryPath names one delivery.
type DeliveryPath struct {
	ID string `path:"id" format:"uuid"`
}

// RetryOutput acknowledges a retry request.
type RetryOutput struct{ Body WebhookDelivery }

func (h *handlers) registerDeliveries(a huma.API) {
	tags := []string{"Webhook deliveries"}
	huma.Register(a, huma.Operation{
		OperationID: "list-webhook-deliveries",
		Method:      http.MethodGet,
		Path:        "/v1/webhook-deliveries",
		Summary:     "List webhook deliveries",
		Description: "The caller's own deliveries (a buyer's or a seller's), newest first, filtered by endpoint, event or status.",
		Tags:        tags,
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListDeliveriesInput) (*DeliveryListOutput, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		if in.EventID != "" {
			if err := checkText("query.event_id", in.EventID); err != nil {
				return nil, err
			}
		}
		f := store.DeliveryFilter{EndpointID: canonicalID(in.EndpointID), EventID: in.EventID, Status: in.Status}
		page, err := h.store.Deliveries(ctx, viewer(ctx), f, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &DeliveryListOutput{Body: listBody(page, toDelivery)}, nil
	})
	huma.Register(a, huma.Operation{
		OperationID:   "retry-webhook-delivery",
		Method:        http.MethodPost,
		Path:          "/v1/webhook-deliveries/{id}/retry",
		Summary:       "Deliver again now",
		Description:   "Sends the event to the endpoint again right away (same webhook-id), whatever the delivery's status.",
		Tags:          tags,
		Security:      secured(),
		DefaultStatus: http.StatusAccepted,
		Errors:        errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *DeliveryPath) (*RetryOutput, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		before, err := h.store.DeliveryFor(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if h.delivery == nil {
			return nil, huma.Error503ServiceUnavailable("webhook delivery is not running")
		}
		ev, err := h.store.Event(ctx, before.EventID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		d, err := h.store.RequeueDelivery(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if err := h.delivery.Redeliver(ctx, store.EventRef{ID: ev.ID, Type: ev.Type, DealID: ev.DealID}); err != nil {
			h.log.WarnContext(ctx, "redelivery could not start", "delivery", d.ID, "err", err)
			if rerr := h.store.RestoreDelivery(context.WithoutCancel(ctx), before, *d.NextAttemptAt); rerr != nil {
				h.log.ErrorContext(ctx, "restoring a requeued delivery failed", "delivery", d.ID, "err", rerr)
			}
			return nil, h.fail(ctx, errors.Join(store.ErrUnavailable, err))
		}
		return &RetryOutput{Body: toDelivery(d)}, nil
	})
}
