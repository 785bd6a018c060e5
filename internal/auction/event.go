package auction

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/dealcast/dealcast/internal/deal"
)

// EventType names what happened to an auction or a bid.
type EventType string

// The auction and bid events. auction.* go to the buyers the seller
// authorises (each a buyer's copy) and to the seller; bid.placed to the
// seller; bid.outbid to the buyer that lost the lead.
const (
	EventCreated   EventType = "auction.created"
	EventUpdated   EventType = "auction.updated"
	EventClosed    EventType = "auction.closed"
	EventBidPlaced EventType = "bid.placed"
	EventOutbid    EventType = "bid.outbid"
)

// BuyerEventTypes are the auction events a buyer can receive.
var BuyerEventTypes = []EventType{EventCreated, EventUpdated, EventClosed, EventOutbid}

// SellerEventTypes are the auction events a seller can receive.
var SellerEventTypes = []EventType{EventCreated, EventUpdated, EventClosed, EventBidPlaced}

// Event announces an auction's change in the envelope of every Dealcast
// event.
type Event struct {
	ID        string    `json:"id" doc:"Event ID, also the webhook-id header of every delivery." example:"evt_3jx5bq2zvzq4b7m2ihdj5n6w4a"`
	Type      EventType `json:"type" enum:"auction.created,auction.updated,auction.closed,bid.placed,bid.outbid"`
	CreatedAt time.Time `json:"created_at"`
	Data      EventData `json:"data"`
}

// EventData carries the auction after the change, the old values of the
// fields a change altered (auction.updated) and the bid (bid.placed).
type EventData struct {
	Auction  Auction        `json:"auction"`
	Previous map[string]any `json:"previous,omitempty"`
	Bid      *Bid           `json:"bid,omitempty"`
}

// NewEvent is the event of type t for a as it is at at.
func NewEvent(t EventType, a Auction, at time.Time) Event {
	return Event{ID: deal.NewEventID(), Type: t, CreatedAt: at, Data: EventData{Auction: a}}
}

// Previous is the old value of every field of the copy before that differs
// in after, keyed by its JSON name, as data.previous of every *.updated
// event holds them.
func Previous(before, after Auction) (map[string]any, error) {
	var b, a map[string]any
	for _, x := range []struct {
		v   Auction
		out *map[string]any
	}{{before, &b}, {after, &a}} {
		raw, err := json.Marshal(x.v)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, x.out); err != nil {
			return nil, err
		}
	}
	prev := map[string]any{}
	for k, v := range b {
		if !reflect.DeepEqual(v, a[k]) {
			prev[k] = v
		}
	}
	return prev, nil
}
