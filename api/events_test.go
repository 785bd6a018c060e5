package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dealcast/dealcast/internal/deal"
)

// dealEvents reads the outbox rows of one deal, oldest first.
func dealEvents(e *env, dealID string) []deal.Event {
	e.t.Helper()
	evs, err := e.store.DealEvents(e.t.Context(), dealID)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// asJSONValue is v's JSON form, for comparing values that went through JSONB.
func asJSONValue(t testing.TB, v any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(marshalBody(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantPrevious checks an event's previous against the JSON object want.
func wantPrevious(t testing.TB, ev deal.Event, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if got := asJSONValue(t, ev.Data.Previous); !reflect.DeepEqual(got, w) {
		t.Fatalf("previous %s, want %s", marshalBody(t, ev.Data.Previous), want)
	}
}

func TestDealEventsOutbox(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(600, 400))

	evs := dealEvents(e, d.ID)
	if len(evs) != 1 {
		t.Fatalf("%d events after create, want 1", len(evs))
	}
	created := evs[0]
	if created.Type != deal.EventCreated || !strings.HasPrefix(created.ID, "evt_") || created.Data.Previous != nil {
		t.Fatalf("created event %+v", created)
	}
	if !reflect.DeepEqual(asJSONValue(t, created.Data.Deal), asJSONValue(t, d)) {
		t.Fatalf("created event carries %+v, the API answered %+v", created.Data.Deal, d)
	}
	if !created.CreatedAt.Equal(d.CreatedAt) {
		t.Fatalf("event created_at %v, deal created_at %v", created.CreatedAt, d.CreatedAt)
	}
	// The event's JSON has exactly the contract's keys; a created event has no previous.
	var raw map[string]any
	if err := json.Unmarshal(marshalBody(t, created), &raw); err != nil {
		t.Fatal(err)
	}
	if data, _ := raw["data"].(map[string]any); data == nil || data["deal"] == nil || data["previous"] != nil {
		t.Fatalf("created event data %v", raw["data"])
	}

	type step struct {
		patch    any
		previous string // JSON; "" for a no-op that must write no event
	}
	steps := []step{
		{map[string]any{"name": "Renamed"}, `{"name": "Winter bundle"}`},
		{map[string]any{"name": "Renamed"}, ""},
		{map[string]any{"status": "sold"}, `{"status": "available"}`},
		{map[string]any{"discount": map[string]any{"type": "percentage", "amount": 12.5}}, `{"discount": null, "net_price": 1000}`},
		{`{"discount": {"type": "percentage", "amount": 12.50}}`, ""},
		{map[string]any{"discount": map[string]any{"type": "flat", "amount": 125}}, `{"discount": {"type": "percentage", "amount": 12.5}}`},
		{map[string]any{"discount": map[string]any{"type": "flat", "amount": 200}}, `{"discount": {"type": "flat", "amount": 125}, "net_price": 875}`},
		{map[string]any{"currency": "USD"}, `{"currency": "gbp"}`},
		{map[string]any{"currency": "usd"}, ""},
		{map[string]any{"items": []any{map[string]any{"id": "z", "name": "Z", "price": 999}}, "total_price": 999},
			`{"items": [{"id": "sku-0", "name": "Item 0", "price": 600}, {"id": "sku-1", "name": "Item 1", "price": 400}], "total_price": 1000, "net_price": 800}`},
		{map[string]any{"items": []any{map[string]any{"id": "z", "name": "Z renamed", "price": 999}}},
			`{"items": [{"id": "z", "name": "Z", "price": 999}]}`},
		{`{"discount": null}`, `{"discount": {"type": "flat", "amount": 200}, "net_price": 799}`},
		{`{"discount": null}`, ""},
		{map[string]any{"name": "Last", "status": "available", "currency": "GBP"}, `{"name": "Renamed", "status": "sold", "currency": "usd"}`},
		{`{}`, ""},
	}
	version := int64(1)
	want := 1
	for i, s := range steps {
		r := c.patch(d.ID, s.patch).want(http.StatusOK)
		after := decodeDeal(t, r)
		evs := dealEvents(e, d.ID)
		if s.previous == "" {
			if after.Version != version || len(evs) != want {
				t.Fatalf("step %d no-op %v: version %d, %d events; want %d and %d", i, s.patch, after.Version, len(evs), version, want)
			}
			continue
		}
		version++
		want++
		if after.Version != version || len(evs) != want {
			t.Fatalf("step %d %v: version %d, %d events; want %d and %d", i, s.patch, after.Version, len(evs), version, want)
		}
		ev := evs[len(evs)-1]
		if ev.Type != deal.EventUpdated || ev.Data.Deal.Version != version {
			t.Fatalf("step %d: event %s for version %d", i, ev.Type, ev.Data.Deal.Version)
		}
		if !reflect.DeepEqual(asJSONValue(t, ev.Data.Deal), asJSONValue(t, after)) {
			t.Fatalf("step %d: event deal %+v, API answered %+v", i, ev.Data.Deal, after)
		}
		if !ev.CreatedAt.Equal(after.UpdatedAt) {
			t.Fatalf("step %d: event created_at %v, deal updated_at %v", i, ev.CreatedAt, after.UpdatedAt)
		}
		wantPrevious(t, ev, s.previous)
	}
	// Refused patches write nothing.
	c.patch(d.ID, map[string]any{"total_price": 1}).want(http.StatusUnprocessableEntity)
	c.patch(d.ID, map[string]any{"name": "x"}, "If-Match", `"1"`).want(http.StatusPreconditionFailed)
	all := dealEvents(e, d.ID)
	if len(all) != want {
		t.Fatalf("%d events after refused patches, want %d", len(all), want)
	}
	ids := map[string]bool{}
	for i, ev := range all {
		if ids[ev.ID] {
			t.Fatalf("event ID %s repeated", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Data.Deal.ID != d.ID || ev.Data.Deal.Version != int64(i+1) {
			t.Fatalf("event %d: deal %s version %d", i, ev.Data.Deal.ID, ev.Data.Deal.Version)
		}
	}
}

// eventPage is one page of GET /v1/events.
type eventPage struct {
	Data       []deal.Event `json:"data"`
	NextCursor *string      `json:"next_cursor"`
}

func readEvents(e *env, token, query string) eventPage {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/events?"+query, token, nil).want(http.StatusOK)
	if !strings.Contains(string(r.Body), `"data":[`) {
		e.t.Fatalf("event page has no data array: %s", r.Body)
	}
	var p eventPage
	r.decode(&p)
	return p
}

// eventKey names an event by what it records.
func eventKey(ev deal.Event) string {
	return fmt.Sprintf("%s %s v%d", ev.Type, ev.Data.Deal.ID, ev.Data.Deal.Version)
}

func TestEventFeed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	aID, a := e.seller()
	bID, b := e.seller()
	_, cTok := e.seller()
	buyerID, buyer := e.buyer()
	_, otherBuyer := e.buyer()
	e.grant(aID, a, buyerID)
	e.grant(bID, b, buyerID)
	ac, bc, cc := dealClient{e, a}, dealClient{e, b}, dealClient{e, cTok}

	var want []string
	key := func(typ deal.EventType, d deal.Deal) {
		want = append(want, fmt.Sprintf("%s %s v%d", typ, d.ID, d.Version))
	}
	d1 := ac.create(dealDraft(100))
	key(deal.EventCreated, d1)
	hidden := cc.create(dealDraft(100))
	d2 := bc.create(dealDraft(200))
	key(deal.EventCreated, d2)
	key(deal.EventUpdated, decodeDeal(t, ac.patch(d1.ID, map[string]any{"name": "A renamed"}).want(http.StatusOK)))
	cc.patch(hidden.ID, map[string]any{"name": "C renamed"}).want(http.StatusOK)
	bc.patch(d2.ID, map[string]any{"name": d2.Name}).want(http.StatusOK) // no-op: no event
	d3 := ac.create(dealDraft(300))
	key(deal.EventCreated, d3)
	key(deal.EventUpdated, decodeDeal(t, bc.patch(d2.ID, map[string]any{"status": "sold"}).want(http.StatusOK)))

	var got []string
	p := readEvents(e, buyer, "limit=100")
	for _, ev := range p.Data {
		got = append(got, eventKey(ev))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("feed\n got %v\nwant %v", got, want)
	}
	if p.NextCursor != nil {
		t.Fatalf("complete feed has next_cursor %q", *p.NextCursor)
	}
	for i := 1; i < len(p.Data); i++ {
		if p.Data[i].CreatedAt.Before(p.Data[i-1].CreatedAt) {
			t.Fatalf("feed not oldest first at %d", i)
		}
	}
	// The feed carries the same events as the outbox, previous included.
	if ev := p.Data[2]; !reflect.DeepEqual(asJSONValue(t, ev), asJSONValue(t, dealEvents(e, d1.ID)[1])) {
		t.Fatalf("feed event %+v differs from the outbox", ev)
	} else {
		wantPrevious(t, ev, `{"name": "Winter bundle"}`)
	}

	// Paging with after, for several page sizes.
	all := p.Data
	for _, limit := range []int{1, 2, 3, 5, 6} {
		var paged []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("limit %d: paging never ends", limit)
			}
			q := fmt.Sprintf("limit=%d", limit)
			if after != "" {
				q += "&after=" + url.QueryEscape(after)
			}
			page := readEvents(e, buyer, q)
			if len(page.Data) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page.Data))
			}
			for _, ev := range page.Data {
				paged = append(paged, eventKey(ev))
			}
			if page.NextCursor == nil {
				break
			}
			if len(page.Data) == 0 || *page.NextCursor != page.Data[len(page.Data)-1].ID {
				t.Fatalf("limit %d: next_cursor %q is not the page's last event", limit, *page.NextCursor)
			}
			after = *page.NextCursor
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("limit %d: paged feed %v, want %v", limit, paged, want)
		}
	}
	// After the newest event: caught up.
	if p := readEvents(e, buyer, "after="+all[len(all)-1].ID); len(p.Data) != 0 || p.NextCursor != nil {
		t.Fatalf("after the last event: %+v", p)
	}
	// After an event in the middle: the rest.
	if p := readEvents(e, buyer, "after="+all[1].ID); len(p.Data) != len(all)-2 || p.Data[0].ID != all[2].ID {
		t.Fatalf("after the second event: %d events", len(p.Data))
	}

	// after must name an event this buyer may see.
	hiddenEvents := dealEvents(e, hidden.ID)
	for _, after := range []string{"evt_doesnotexist", hiddenEvents[0].ID, hiddenEvents[1].ID, "x", strings.Repeat("e", 64)} {
		expectProblem(e.do(http.MethodGet, "/v1/events?after="+url.QueryEscape(after), buyer, nil), http.StatusUnprocessableEntity, "query.after")
	}
	expectProblem(e.do(http.MethodGet, "/v1/events?after="+strings.Repeat("e", 65), buyer, nil), http.StatusUnprocessableEntity, "query.after")
	expectProblem(e.do(http.MethodGet, "/v1/events?after="+all[0].ID, otherBuyer, nil), http.StatusUnprocessableEntity, "query.after")
	// Limits.
	for _, q := range []string{"limit=0", "limit=101", "limit=-3", "limit=x"} {
		expectProblem(e.do(http.MethodGet, "/v1/events?"+q, buyer, nil), http.StatusUnprocessableEntity, "query.limit")
	}
	if p := readEvents(e, buyer, "limit=100"); len(p.Data) != len(want) {
		t.Fatalf("limit=100: %d events", len(p.Data))
	}
	// A buyer nobody authorised has an empty feed.
	if p := readEvents(e, otherBuyer, ""); len(p.Data) != 0 || p.NextCursor != nil {
		t.Fatalf("ungranted buyer's feed %+v", p)
	}
	// A seller's feed has only the events addressed to it (its invoices),
	// not its deals' events; operators have none.
	if p := readEvents(e, a, ""); len(p.Data) != 0 {
		t.Fatalf("a seller's feed without invoices has %d events", len(p.Data))
	}
	expectProblem(e.do(http.MethodGet, "/v1/events", e.operator(), nil), http.StatusForbidden, "")
	expectProblem(e.do(http.MethodGet, "/v1/events", "", nil), http.StatusUnauthorized, "")

	// Revoking a grant removes that seller's events from the feed, and its
	// events can no longer be used as after.
	e.do(http.MethodDelete, "/v1/sellers/"+aID+"/buyers/"+buyerID, a, nil).want(http.StatusNoContent)
	var onlyB []string
	for _, ev := range all {
		if ev.Data.Deal.Seller == bID {
			onlyB = append(onlyB, eventKey(ev))
		}
	}
	got = nil
	for _, ev := range readEvents(e, buyer, "").Data {
		got = append(got, eventKey(ev))
	}
	if !slices.Equal(got, onlyB) {
		t.Fatalf("after revoking A: %v, want %v", got, onlyB)
	}
	expectProblem(e.do(http.MethodGet, "/v1/events?after="+all[0].ID, buyer, nil), http.StatusUnprocessableEntity, "query.after")
}

func TestEventFeedDefaultLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	for range 21 {
		c.create(dealDraft(1))
	}
	p := readEvents(e, buyer, "")
	if len(p.Data) != 20 || p.NextCursor == nil {
		t.Fatalf("default page: %d events, next %v", len(p.Data), p.NextCursor)
	}
	rest := readEvents(e, buyer, "after="+*p.NextCursor)
	if len(rest.Data) != 1 || rest.NextCursor != nil {
		t.Fatalf("second page: %d events, next %v", len(rest.Data), rest.NextCursor)
	}
	if p := readEvents(e, buyer, "limit=21"); len(p.Data) != 21 || p.NextCursor != nil {
		t.Fatalf("exactly full page: %d events, next %v", len(p.Data), p.NextCursor)
	}
}

// TestEventFeedRejectsUnstorableAfter: after is free text; NUL or invalid
// UTF-8 in it cannot name an event and must be a 422, never a 500.
func TestEventFeedRejectsUnstorableAfter(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	dealClient{e, seller}.create(dealDraft(1))
	for _, after := range []string{"%00", "evt_%00", "%ff", "evt_%c3%28"} {
		r := e.doRaw(http.MethodGet, "/v1/events?after="+after, buyer, nil)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("after=%s: status %d, want 422: %s", after, r.Status, r.Body)
		}
	}
}
