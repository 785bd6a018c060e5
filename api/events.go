package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
)

// ListEventsInput pages the buyer's event feed.
type ListEventsInput struct {
	After string `query:"after" maxLength:"64" doc:"Return events after this event ID; empty for the oldest."`
	Limit int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size."`
}

// EventListOutput is a page of events, oldest first.
type EventListOutput struct {
	Body ListBody[deal.Event]
}

func (h *handlers) registerEvents(a huma.API) {
	huma.Register(a, huma.Operation{
		OperationID: "list-events",
		Method:      http.MethodGet,
		Path:        "/v1/events",
		Summary:     "List events (pull feed)",
		Description: "The events of every seller that authorises the buyer, oldest first: the same events webhooks " +
			"deliver, for catching up after downtime. Pass the last event ID you processed as `after`; " +
			"`next_cursor` is that ID for the next page, null once you are caught up. An event appears here a few " +
			"seconds after it happened, so that none committed out of order is ever skipped.",
		Tags:     []string{"Events"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListEventsInput) (*EventListOutput, error) {
		p, err := allow(ctx, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		events, more, err := h.store.BuyerEvents(ctx, p.Subject, in.After, in.Limit)
		if errors.Is(err, store.ErrUnknownEvent) {
			return nil, huma.Error422UnprocessableEntity("validation failed",
				&huma.ErrorDetail{Location: "query.after", Message: "no such event", Value: in.After})
		}
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		body := ListBody[deal.Event]{Data: events}
		if body.Data == nil {
			body.Data = []deal.Event{}
		}
		if more {
			last := events[len(events)-1].ID
			body.NextCursor = &last
		}
		return &EventListOutput{Body: body}, nil
	})
}
