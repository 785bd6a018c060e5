package invoice

import (
	"time"

	"github.com/dealcast/dealcast/internal/deal"
)

// EventType names what happened to an invoice.
type EventType string

// The invoice events, sent to the invoice's buyer and seller.
const (
	EventIssued  EventType = "invoice.issued"
	EventPaid    EventType = "invoice.paid"
	EventVoided  EventType = "invoice.voided"
	EventOverdue EventType = "invoice.overdue"
)

// EventTypes are every invoice event type.
var EventTypes = []EventType{EventIssued, EventPaid, EventVoided, EventOverdue}

// Event announces an invoice's change in the envelope of every Dealcast
// event.
type Event struct {
	ID        string    `json:"id" doc:"Event ID, also the webhook-id header of every delivery." example:"evt_3jx5bq2zvzq4b7m2ihdj5n6w4a"`
	Type      EventType `json:"type" enum:"invoice.issued,invoice.paid,invoice.voided,invoice.overdue"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData carries the invoice after the change.
type EventData struct {
	Invoice Invoice `json:"invoice"`
}

// NewEvent is the event of type t for inv as it is at at.
func NewEvent(t EventType, inv Invoice, at time.Time) Event {
	return Event{ID: deal.NewEventID(), Type: t, CreatedAt: at, Data: EventData{Invoice: inv}}
}
