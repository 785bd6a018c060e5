package deal

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// EventType names what happened to a deal.
type EventType string

// The event types buyers can subscribe to.
const (
	EventCreated EventType = "deal.created"
	EventUpdated EventType = "deal.updated"
)

// Event is the record of one deal change, as buyers receive it.
type Event struct {
	ID        string    `json:"id" doc:"Event ID, also the webhook-id header of every delivery." example:"evt_3jx5bq2zvzq4b7m2ihdj5n6w4a"`
	Type      EventType `json:"type" enum:"deal.created,deal.updated"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData carries the deal after the change and, for updates, the old
// values of the fields that changed.
type EventData struct {
	Deal     Deal           `json:"deal"`
	Previous map[string]any `json:"previous,omitempty" doc:"Old values of the changed fields; deal.updated only."`
}

var eventIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewEventID returns a random event ID. Random rather than time-ordered so
// that inserts spread over CockroachDB ranges instead of piling onto one.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "evt_" + strings.ToLower(eventIDEncoding.EncodeToString(b[:]))
}

// Created is the event for a new deal.
func Created(d Deal) Event {
	return Event{ID: NewEventID(), Type: EventCreated, CreatedAt: d.UpdatedAt, Data: EventData{Deal: d}}
}

// Updated is the event for a change to a deal.
func Updated(c Change) Event {
	return Event{ID: NewEventID(), Type: EventUpdated, CreatedAt: c.Deal.UpdatedAt, Data: EventData(c)}
}
