package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
)

// ListEventsInput pages the buyer's event feed.
type ListEventsInput struct {
	After string `query:"after" maxLength:"64" doc:"Return events after this event ID; empty for the oldest."`
	Limit int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size."`
}

// Event is one event as webhooks deliver it and the feed lists it: the
// envelope is the same for every type, data carries the object it is about.
type Event struct {
	ID        string    `json:"id" doc:"Event ID, also the webhook-id header of every delivery." example:"evt_3jx5bq2zvzq4b7m2ihdj5n6w4a"`
	Type      string    `json:"type" enum:"deal.created,deal.updated,invoice.issued,invoice.paid,invoice.voided,invoice.overdue,auction.created,auction.updated,auction.closed,bid.placed,bid.outbid"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData is the object an event is about: a deal or an auction (with
// the old values of the changed fields on *.updated), a bid, or an
// invoice.
type EventData struct {
	Deal     *deal.Deal       `json:"deal,omitempty" doc:"The deal after the change; deal.* events."`
	Auction  *auction.Auction `json:"auction,omitempty" doc:"The auction after the change (a buyer's copy has no reserve_price and no winner); auction.* and bid.* events."`
	Bid      *auction.Bid     `json:"bid,omitempty" doc:"The accepted bid with its buyer; bid.placed only."`
	Previous map[string]any   `json:"previous,omitempty" doc:"Old values of the changed fields; deal.updated and auction.updated."`
	Invoice  *invoice.Invoice `json:"invoice,omitempty" doc:"The invoice after the change; invoice.* events."`
}

// EventListOutput is a page of events, oldest first.
type EventListOutput struct {
	Body ListBody[Event]
}

func (h *handlers) registerEvents(a huma.API) {
	huma.Register(a, huma.Operation{
		OperationID: "list-events",
		Method:      http.MethodGet,
		Path:        "/v1/events",
		Summary:     "List events (pull feed)",
		Description: "The caller's events, oldest first: for a buyer, the deal events of every seller that authorises it " +
			"and the events of its invoices; for a seller, the events of its invoices. The same events webhooks " +
			"deliver, for catching up after downtime. Pass the last event ID you processed as `after`; " +
			"`next_cursor` is that ID for the next page, null once you are caught up. An event appears here a few " +
			"seconds after it happened, so that none committed out of order is ever skipped.",
		Tags:     []string{"Events"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListEventsInput) (*EventListOutput, error) {
		if _, err := allow(ctx, store.RoleBuyer, store.RoleSeller); err != nil {
			return nil, err
		}
		events, more, err := h.store.AccountEvents(ctx, viewer(ctx), in.After, in.Limit)
		if errors.Is(err, store.ErrUnknownEvent) {
			return nil, huma.Error422UnprocessableEntity("validation failed",
				&huma.ErrorDetail{Location: "query.after", Message: "no such event", Value: in.After})
		}
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		body := ListBody[Event]{Data: make([]Event, len(events))}
		for i, ev := range events {
			if err := json.Unmarshal(ev.Payload, &body.Data[i]); err != nil {
				return nil, h.fail(ctx, fmt.Errorf("event %s: %w", ev.ID, err))
			}
			// A buyer only ever receives buyers' copies; encoded again,
			// they must stay without the seller's fields.
			if x := body.Data[i].Data.Auction; x != nil && principal(ctx).Role == store.RoleBuyer {
				x.ForBuyer = true
			}
		}
		if more {
			last := events[len(events)-1].ID
			body.NextCursor = &last
		}
		return &EventListOutput{Body: body}, nil
	})
}
