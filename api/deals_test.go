package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/deal"
)

const mergePatch = "application/merge-patch+json"

// dealDraft is a valid create body whose items cost prices and whose
// total_price is their sum.
func dealDraft(prices ...int64) map[string]any {
	items := make([]map[string]any, len(prices))
	var sum int64
	for i, p := range prices {
		items[i] = map[string]any{"id": fmt.Sprintf("sku-%d", i), "name": fmt.Sprintf("Item %d", i), "price": p}
		sum += p
	}
	return map[string]any{"name": "Winter bundle", "currency": "gbp", "total_price": sum, "items": items}
}

// dealWith returns a shallow copy of body with the given fields replaced.
func dealWith(body map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(body))
	for k, v := range body {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// marshalBody marshals v, failing the test on error.
func marshalBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dealClient talks to the deal routes as one caller.
type dealClient struct {
	e     *env
	token string
}

// create posts body and returns the created deal; any status but 201 fails.
func (c dealClient) create(body any, headers ...string) deal.Deal {
	c.e.t.Helper()
	var d deal.Deal
	c.e.do(http.MethodPost, "/v1/deals", c.token, body, headers...).want(http.StatusCreated).decode(&d)
	return d
}

// get reads one deal; any status but 200 fails.
func (c dealClient) get(id string) deal.Deal {
	c.e.t.Helper()
	var d deal.Deal
	c.e.do(http.MethodGet, "/v1/deals/"+id, c.token, nil).want(http.StatusOK).decode(&d)
	return d
}

// patch sends a merge patch; extra headers come after the content type, so
// they can override it.
func (c dealClient) patch(id string, body any, headers ...string) *response {
	c.e.t.Helper()
	return c.e.do(http.MethodPatch, "/v1/deals/"+id, c.token, body, append([]string{"Content-Type", mergePatch}, headers...)...)
}

// dealPage is one page of GET /v1/deals.
type dealPage struct {
	Data       []deal.Deal `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

// list reads one page of GET /v1/deals with query (no leading "?").
func (c dealClient) list(query string) dealPage {
	c.e.t.Helper()
	r := c.e.do(http.MethodGet, "/v1/deals?"+query, c.token, nil).want(http.StatusOK)
	if !json.Valid(r.Body) || !strings.Contains(string(r.Body), `"data":[`) {
		c.e.t.Fatalf("list body has no data array: %s", r.Body)
	}
	var p dealPage
	r.decode(&p)
	return p
}

// listAll follows next_cursor to the end and returns every deal's ID in order.
func (c dealClient) listAll(query string) []string {
	c.e.t.Helper()
	var ids []string
	cursor := ""
	for range 1000 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := c.list(q)
		for _, d := range p.Data {
			ids = append(ids, d.ID)
		}
		if p.NextCursor == nil {
			return ids
		}
		cursor = *p.NextCursor
	}
	c.e.t.Fatal("listing never ended")
	return nil
}

func dealIDs(ds []deal.Deal) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// amountText is a discount amount as the API writes it.
func amountText(t testing.TB, d *deal.Discount) string {
	t.Helper()
	if d == nil {
		return "null"
	}
	b, err := d.Amount.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expectProblem asserts an RFC 9457 answer with status code whose errors
// name location (when location is not empty).
func expectProblem(r *response, code int, location string) problem {
	r.t.Helper()
	r.want(code)
	p := r.problem()
	if p.Status != code {
		r.t.Fatalf("problem status %d, want %d: %s", p.Status, code, r.Body)
	}
	if location != "" && !slices.Contains(p.locations(), location) {
		r.t.Fatalf("error locations %q do not name %q: %s", p.locations(), location, r.Body)
	}
	return p
}

// dealCount is the number of deals the seller behind token owns.
func dealCount(c dealClient) int {
	c.e.t.Helper()
	return len(c.listAll("limit=100"))
}

func TestCreateDealReturnsComputedFields(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	c := dealClient{e, seller}
	body := dealDraft(6000, 4000)
	r := e.do(http.MethodPost, "/v1/deals", seller, body).want(http.StatusCreated)
	var d deal.Deal
	r.decode(&d)
	if _, err := uuid.Parse(d.ID); err != nil {
		t.Fatalf("id %q is not a UUID", d.ID)
	}
	if d.Seller != sellerID || d.Name != "Winter bundle" || d.TotalPrice != 10000 || d.NetPrice != 10000 ||
		d.Currency != "gbp" || d.Discount != nil || d.Status != deal.StatusAvailable || d.Version != 1 {
		t.Fatalf("unexpected deal %+v", d)
	}
	if !reflect.DeepEqual(d.Items, []deal.Item{{ID: "sku-0", Name: "Item 0", Price: 6000}, {ID: "sku-1", Name: "Item 1", Price: 4000}}) {
		t.Fatalf("items %+v", d.Items)
	}
	if got := r.Header.Get("ETag"); got != `"1"` {
		t.Fatalf("ETag %q, want \"1\"", got)
	}
	if got := r.Header.Get("Location"); got != "/v1/deals/"+d.ID {
		t.Fatalf("Location %q", got)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	// The wire form: timestamps are RFC 3339 UTC, discount is an explicit null.
	var raw map[string]any
	r.decode(&raw)
	for _, f := range []string{"created_at", "updated_at"} {
		s, _ := raw[f].(string)
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Fatalf("%s %q is not RFC 3339 UTC", f, s)
		}
	}
	if v, ok := raw["discount"]; !ok || v != nil {
		t.Fatalf("discount should be present and null, got %v (present %v)", v, ok)
	}
	if !d.CreatedAt.Equal(d.UpdatedAt) {
		t.Fatalf("created_at %v != updated_at %v on a new deal", d.CreatedAt, d.UpdatedAt)
	}
	if got := c.get(d.ID); !reflect.DeepEqual(got, d) {
		t.Fatalf("GET returned %+v, POST returned %+v", got, d)
	}
}

func TestCreateDealStatusAndCurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	for _, tc := range []struct {
		currency, want string
	}{{"GBP", "gbp"}, {"gbp", "gbp"}, {"Gbp", "gbp"}, {"uSd", "usd"}, {"EUR", "eur"}, {"jpy", "jpy"}} {
		d := c.create(dealWith(dealDraft(100), "currency", tc.currency))
		if d.Currency != tc.want {
			t.Errorf("currency %q stored as %q, want %q", tc.currency, d.Currency, tc.want)
		}
		if got := c.get(d.ID).Currency; got != tc.want {
			t.Errorf("currency %q read back as %q", tc.currency, got)
		}
	}
	if d := c.create(dealDraft(100)); d.Status != deal.StatusAvailable {
		t.Errorf("default status %q", d.Status)
	}
	if d := c.create(dealWith(dealDraft(100), "status", "sold")); d.Status != deal.StatusSold {
		t.Errorf("status sold stored as %q", d.Status)
	}
	if d := c.create(dealWith(dealDraft(100), "status", "available")); d.Status != deal.StatusAvailable {
		t.Errorf("status available stored as %q", d.Status)
	}
}

func TestCreateDealNetPrice(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	for _, tc := range []struct {
		name       string
		total      int64
		discount   string // JSON
		net        int64
		wantAmount string
	}{
		{"percentage 124.875 rounds up", 999, `{"type":"percentage","amount":12.5}`, 874, "12.5"},
		{"percentage exactly .5 rounds up", 25, `{"type":"percentage","amount":10}`, 22, "10"},
		{"percentage .5 of a single unit", 5, `{"type":"percentage","amount":10}`, 4, "10"},
		{"percentage half of one unit", 1, `{"type":"percentage","amount":50}`, 0, "50"},
		{"percentage below .5 rounds down", 999, `{"type":"percentage","amount":0.04}`, 999, "0.04"},
		{"percentage above .5 rounds up", 3, `{"type":"percentage","amount":33.33}`, 2, "33.33"},
		{"percentage 33.33 of 10000", 10000, `{"type":"percentage","amount":33.33}`, 6667, "33.33"},
		{"percentage smallest", 10000, `{"type":"percentage","amount":0.01}`, 9999, "0.01"},
		{"percentage trailing zero kept canonical", 10000, `{"type":"percentage","amount":12.50}`, 8750, "12.5"},
		{"percentage exponent form", 10000, `{"type":"percentage","amount":1.25e1}`, 8750, "12.5"},
		{"percentage 100", 10000, `{"type":"percentage","amount":100}`, 0, "100"},
		{"percentage 100.00", 10000, `{"type":"percentage","amount":100.00}`, 0, "100"},
		{"flat", 10000, `{"type":"flat","amount":1000}`, 9000, "1000"},
		{"flat one unit", 10000, `{"type":"flat","amount":1}`, 9999, "1"},
		{"flat whole number written with decimals", 10000, `{"type":"flat","amount":1000.0}`, 9000, "1000"},
		{"flat equal to total", 10000, `{"type":"flat","amount":10000}`, 0, "10000"},
		{"no discount", 10000, `null`, 10000, "null"},
	} {
		body := dealWith(dealDraft(tc.total), "discount", json.RawMessage(tc.discount))
		d := c.create(body)
		if d.NetPrice != tc.net {
			t.Errorf("%s: net_price %d, want %d", tc.name, d.NetPrice, tc.net)
		}
		if got := amountText(t, d.Discount); got != tc.wantAmount {
			t.Errorf("%s: discount amount %s, want %s", tc.name, got, tc.wantAmount)
		}
		if got := c.get(d.ID); got.NetPrice != tc.net || amountText(t, got.Discount) != tc.wantAmount {
			t.Errorf("%s: read back net %d amount %s", tc.name, got.NetPrice, amountText(t, got.Discount))
		}
	}
}

func TestCreateDealAtTheLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()

	t.Run("1000 items at the highest price", func(t *testing.T) {
		t.Parallel()
		c := dealClient{setup(t), seller}
		prices := make([]int64, deal.MaxItems)
		for i := range prices {
			prices[i] = deal.MaxItemPrice
		}
		d := c.create(dealWith(dealDraft(prices...), "discount", map[string]any{"type": "percentage", "amount": 33.33}))
		const total = int64(deal.MaxItems) * deal.MaxItemPrice // 10^18
		if len(d.Items) != deal.MaxItems || d.TotalPrice != total {
			t.Fatalf("%d items, total %d", len(d.Items), d.TotalPrice)
		}
		if want := total - total/10000*3333; d.NetPrice != want {
			t.Fatalf("net_price %d, want %d", d.NetPrice, want)
		}
		if got := c.get(d.ID); len(got.Items) != deal.MaxItems || got.Items[999].ID != "sku-999" {
			t.Fatalf("read back %d items", len(got.Items))
		}
	})
	t.Run("flat discount on the largest total", func(t *testing.T) {
		t.Parallel()
		c := dealClient{setup(t), seller}
		prices := make([]int64, deal.MaxItems)
		for i := range prices {
			prices[i] = deal.MaxItemPrice
		}
		d := c.create(dealWith(dealDraft(prices...), "discount", map[string]any{"type": "flat", "amount": int64(999_999_999_999_999_999)}))
		if d.NetPrice != 1 {
			t.Fatalf("net_price %d, want 1", d.NetPrice)
		}
	})
	t.Run("prices of zero", func(t *testing.T) {
		t.Parallel()
		c := dealClient{setup(t), seller}
		d := c.create(dealDraft(0, 0))
		if d.TotalPrice != 0 || d.NetPrice != 0 {
			t.Fatalf("%+v", d)
		}
	})
	t.Run("name of 200 characters", func(t *testing.T) {
		t.Parallel()
		c := dealClient{setup(t), seller}
		for _, name := range []string{strings.Repeat("n", 200), strings.Repeat("€", 200), strings.Repeat("🎁", 200), "N"} {
			if d := c.create(dealWith(dealDraft(1), "name", name)); d.Name != name {
				t.Fatalf("name stored as %q", d.Name)
			}
		}
	})
	t.Run("item id of 100 and item name of 200 characters", func(t *testing.T) {
		t.Parallel()
		c := dealClient{setup(t), seller}
		items := []map[string]any{{"id": strings.Repeat("é", 100), "name": strings.Repeat("ü", 200), "price": 5}}
		d := c.create(dealWith(dealDraft(5), "items", items))
		if d.Items[0].ID != strings.Repeat("é", 100) || d.Items[0].Name != strings.Repeat("ü", 200) {
			t.Fatalf("%+v", d.Items)
		}
	})
}

func TestCreateDealValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	base := dealDraft(600, 400)
	item := func(id, name string, price int64) map[string]any {
		return map[string]any{"id": id, "name": name, "price": price}
	}
	many := func(n int) []map[string]any {
		items := make([]map[string]any, n)
		for i := range items {
			items[i] = item(fmt.Sprintf("i%d", i), "x", 0)
		}
		return items
	}
	for _, tc := range []struct {
		name     string
		body     any
		location string
	}{
		{"empty name", dealWith(base, "name", ""), "body.name"},
		{"blank name", dealWith(base, "name", "   "), "body.name"},
		{"name of 201 characters", dealWith(base, "name", strings.Repeat("n", 201)), "body.name"},
		{"name of 201 multibyte characters", dealWith(base, "name", strings.Repeat("€", 201)), "body.name"},
		{"name with NUL", dealWith(base, "name", "a\x00b"), "body.name"},
		{"name not a string", dealWith(base, "name", 5), "body.name"},
		{"no items", dealWith(base, "items", []any{}, "total_price", 0), "body.items"},
		{"items null", dealWith(base, "items", nil, "total_price", 0), "body.items"},
		{"1001 items", dealWith(base, "items", many(1001), "total_price", 0), "body.items"},
		{"duplicate item id", dealWith(base, "items", []any{item("a", "A", 600), item("a", "B", 400)}), "body.items[1].id"},
		{"duplicate item id later", dealWith(base, "items", []any{item("a", "A", 500), item("b", "B", 250), item("a", "C", 250)}), "body.items[2].id"},
		{"negative price", dealWith(base, "items", []any{item("a", "A", -1), item("b", "B", 1001)}), "body.items[0].price"},
		{"negative price second item", dealWith(base, "items", []any{item("a", "A", 1001), item("b", "B", -1)}), "body.items[1].price"},
		{"price over the maximum", dealWith(base, "items", []any{item("a", "A", deal.MaxItemPrice+1)}, "total_price", int64(deal.MaxItemPrice+1)), "body.items[0].price"},
		{"price not an integer", dealWith(base, "items", []any{map[string]any{"id": "a", "name": "A", "price": 1.5}}, "total_price", 1), "body.items[0].price"},
		{"empty item id", dealWith(base, "items", []any{item("", "A", 1000)}), "body.items[0].id"},
		{"item id of 101 characters", dealWith(base, "items", []any{item(strings.Repeat("i", 101), "A", 1000)}), "body.items[0].id"},
		{"item id with NUL", dealWith(base, "items", []any{item("a\x00", "A", 1000)}), "body.items[0].id"},
		{"blank item id", dealWith(base, "items", []any{item(" ", "A", 1000)}), "body.items[0].id"},
		{"empty item name", dealWith(base, "items", []any{item("a", "", 1000)}), "body.items[0].name"},
		{"item name with NUL", dealWith(base, "items", []any{item("a", "\x00", 1000)}), "body.items[0].name"},
		{"item name of 201 characters", dealWith(base, "items", []any{item("a", strings.Repeat("x", 201), 1000)}), "body.items[0].name"},
		{"unknown item field", dealWith(base, "items", []any{map[string]any{"id": "a", "name": "A", "price": 1000, "qty": 1}}), "body.items[0].qty"},
		{"total below the sum", dealWith(base, "total_price", 999), "body.total_price"},
		{"total above the sum", dealWith(base, "total_price", 1001), "body.total_price"},
		{"negative total", dealWith(base, "total_price", -1), "body.total_price"},
		{"unknown currency", dealWith(base, "currency", "zzz"), "body.currency"},
		{"testing currency", dealWith(base, "currency", "XTS"), "body.currency"},
		{"no currency code", dealWith(base, "currency", "xxx"), "body.currency"},
		{"short currency", dealWith(base, "currency", "gb"), "body.currency"},
		{"long currency", dealWith(base, "currency", "gbpp"), "body.currency"},
		{"currency with NUL", dealWith(base, "currency", "gb\x00"), "body.currency"},
		{"currency symbol", dealWith(base, "currency", "£££"), "body.currency"},
		{"unknown status", dealWith(base, "status", "pending"), "body.status"},
		{"status in capitals", dealWith(base, "status", "SOLD"), "body.status"},
		{"unknown discount type", dealWith(base, "discount", map[string]any{"type": "bogus", "amount": 1}), "body.discount.type"},
		{"discount without amount", dealWith(base, "discount", map[string]any{"type": "flat"}), ""},
		{"discount amount as a string", dealWith(base, "discount", map[string]any{"type": "flat", "amount": "10"}), "body.discount.amount"},
		{"flat zero", dealWith(base, "discount", map[string]any{"type": "flat", "amount": 0}), "body.discount.amount"},
		{"flat negative", dealWith(base, "discount", map[string]any{"type": "flat", "amount": -1}), "body.discount.amount"},
		{"flat above total", dealWith(base, "discount", map[string]any{"type": "flat", "amount": 1001}), "body.discount.amount"},
		{"flat fractional", dealWith(base, "discount", map[string]any{"type": "flat", "amount": 10.5}), "body.discount.amount"},
		{"flat huge", dealWith(base, "discount", json.RawMessage(`{"type":"flat","amount":1e30}`)), "body.discount.amount"},
		{"percentage zero", dealWith(base, "discount", map[string]any{"type": "percentage", "amount": 0}), "body.discount.amount"},
		{"percentage negative", dealWith(base, "discount", map[string]any{"type": "percentage", "amount": -5}), "body.discount.amount"},
		{"percentage over 100", dealWith(base, "discount", map[string]any{"type": "percentage", "amount": 100.01}), "body.discount.amount"},
		{"percentage three decimals", dealWith(base, "discount", map[string]any{"type": "percentage", "amount": 12.345}), "body.discount.amount"},
		{"percentage tiny", dealWith(base, "discount", json.RawMessage(`{"type":"percentage","amount":0.001}`)), "body.discount.amount"},
		{"unknown field", dealWith(base, "foo", 1), "body.foo"},
		{"server field net_price", dealWith(base, "net_price", 1000), "body.net_price"},
		{"server field version", dealWith(base, "version", 7), "body.version"},
		{"server field id", dealWith(base, "id", uuid.NewString()), "body.id"},
		{"body is an array", `[]`, ""},
		{"body is a string", `"deal"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			expectProblem(e.do(http.MethodPost, "/v1/deals", seller, tc.body), http.StatusUnprocessableEntity, tc.location)
		})
	}
	// Nothing invalid was stored. Cleanup runs once the parallel subtests end.
	t.Cleanup(func() {
		if n := dealCount(dealClient{e, seller}); n != 0 {
			t.Errorf("%d deals stored from invalid requests", n)
		}
	})
}

// TestCreateDealListsEveryBadItem checks that one answer names every bad
// item price, not only the first.
func TestCreateDealListsEveryBadItem(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	body := dealWith(dealDraft(1), "items", []any{
		map[string]any{"id": "a", "name": "A", "price": -1},
		map[string]any{"id": "b", "name": "B", "price": 1},
		map[string]any{"id": "c", "name": "C", "price": -2},
	})
	p := expectProblem(e.do(http.MethodPost, "/v1/deals", seller, body), http.StatusUnprocessableEntity, "body.items[0].price")
	if !slices.Contains(p.locations(), "body.items[2].price") {
		t.Fatalf("locations %q lack body.items[2].price", p.locations())
	}
	if p.Detail == "" {
		t.Fatal("problem has no detail")
	}
}

// TestCreateDealMissingFieldIsNamed: a missing required field is a bad
// field like any other; the contract wants its location (body.total_price),
// not just "body".
func TestCreateDealMissingFieldIsNamed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	for _, field := range []string{"name", "items", "total_price", "currency"} {
		body := dealDraft(100)
		delete(body, field)
		expectProblem(e.do(http.MethodPost, "/v1/deals", seller, body), http.StatusUnprocessableEntity, "body."+field)
	}
}

// TestCreateDealTotalOutOfRangeIsNamed: a total_price beyond int64 is a
// bad total_price, reported at body.total_price like any other.
func TestCreateDealTotalOutOfRangeIsNamed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	body := `{"name":"N","currency":"gbp","total_price":9223372036854775808,"items":[{"id":"a","name":"A","price":1}]}`
	p := expectProblem(e.do(http.MethodPost, "/v1/deals", seller, body), http.StatusUnprocessableEntity, "")
	if !slices.Contains(p.locations(), "body.total_price") {
		t.Errorf("locations %q do not name body.total_price: %s", p.locations(), p.Errors)
	}
	for _, er := range p.Errors {
		if strings.Contains(er.Message, "Go struct") || strings.Contains(er.Message, "int64") {
			t.Errorf("error message leaks Go internals: %q", er.Message)
		}
	}
}

func TestCreateDealMalformedAndOversizedBodies(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	for _, body := range []string{`{"name":`, `{`, `not json`, `{"name":"N",}`, `{"name":"N"}}`, "\x00"} {
		expectProblem(e.do(http.MethodPost, "/v1/deals", seller, body), http.StatusBadRequest, "")
	}
	valid := marshalBody(t, dealDraft(100))

	over := append(append([]byte{}, valid...), make([]byte, 1<<20)...)
	for i := len(valid); i < len(over); i++ {
		over[i] = ' '
	}
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, over), http.StatusRequestEntityTooLarge, "")
	justOver := over[:1<<20+1]
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, justOver), http.StatusRequestEntityTooLarge, "")
	// A big item list, still valid, is well under the limit; and a valid
	// body padded to just under 1 MiB is accepted.
	under := over[:1<<20-1]
	c.create(under)
	if n := dealCount(c); n != 1 {
		t.Fatalf("%d deals, want 1", n)
	}
}

func TestCreateDealStoresTextVerbatim(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	texts := []string{
		`Robert'); DROP TABLE deals; --`,
		`' OR '1'='1`,
		`"; DELETE FROM events WHERE ''='`,
		`%_\\ $1 $$ ::uuid`,
		`<script>alert(1)</script>`,
		`😀 Ünïcödé ☃ 中文`,
		"tab\tnew\nline",
		`\u0000 spelled out`,
	}
	var ids []string
	for i, s := range texts {
		items := []map[string]any{{"id": s, "name": s, "price": 1}, {"id": fmt.Sprintf("%d", i), "name": s + "2", "price": 2}}
		d := c.create(map[string]any{"name": s, "currency": "gbp", "total_price": 3, "items": items})
		ids = append(ids, d.ID)
		for _, got := range []deal.Deal{d, c.get(d.ID), dealClient{e, buyer}.get(d.ID)} {
			if got.Name != s || got.Items[0].ID != s || got.Items[0].Name != s || got.Items[1].Name != s+"2" {
				t.Errorf("text %q came back as %q / %q / %q", s, got.Name, got.Items[0].ID, got.Items[0].Name)
			}
		}
	}
	// The tables are intact and hold exactly these deals.
	slices.Reverse(ids)
	if got := c.listAll("limit=100"); !slices.Equal(got, ids) {
		t.Fatalf("list %v, want %v", got, ids)
	}
}

// TestDealNULNeverReachesTheDatabase sends NUL and other characters
// PostgreSQL cannot store through every text input of the deal routes: each
// must be refused with 422, never a 500.
func TestDealNULNeverReachesTheDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	_, buyer := e.buyer()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))

	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, dealDraft(100), "Idempotency-Key", "k\x00"), http.StatusUnprocessableEntity, "header.Idempotency-Key")
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, dealDraft(100), "Idempotency-Key", "k\xff"), http.StatusUnprocessableEntity, "header.Idempotency-Key")
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, dealDraft(100), "Idempotency-Key", "   "), http.StatusUnprocessableEntity, "header.Idempotency-Key")
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, dealDraft(100), "Idempotency-Key", strings.Repeat("k", 256)), http.StatusUnprocessableEntity, "header.Idempotency-Key")
	c.create(dealDraft(100), "Idempotency-Key", strings.Repeat("k", 255))
	expectProblem(c.patch(d.ID, map[string]any{"name": "x\x00"}), http.StatusUnprocessableEntity, "body.name")
	expectProblem(c.patch(d.ID, map[string]any{"currency": "\x00bp"}), http.StatusUnprocessableEntity, "body.currency")
	expectProblem(c.patch(d.ID, map[string]any{"total_price": 1, "items": []any{map[string]any{"id": "\x00", "name": "A", "price": 1}}}), http.StatusUnprocessableEntity, "body.items[0].id")
	expectProblem(c.patch(d.ID, map[string]any{"status": "sold\x00"}), http.StatusUnprocessableEntity, "body.status")
	for _, q := range []string{"status=sold%00", "seller=%00", "cursor=%00", "cursor=%ff", "limit=%00"} {
		for _, tok := range []string{seller, buyer} {
			expectProblem(e.do(http.MethodGet, "/v1/deals?"+q, tok, nil), http.StatusUnprocessableEntity, "")
		}
	}
	expectProblem(e.do(http.MethodGet, "/v1/deals/%00", seller, nil), http.StatusUnprocessableEntity, "")
	if got := c.get(d.ID); got.Version != 1 {
		t.Fatalf("a refused patch changed the deal: %+v", got)
	}
	if n := dealCount(c); n != 2 {
		t.Fatalf("%d deals, want 2", n)
	}
}

func TestDealAccess(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	otherID, other := e.seller()
	buyerID, buyer := e.buyer()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	path := "/v1/deals/" + d.ID
	absent := "/v1/deals/" + uuid.NewString()

	// Every route needs a valid token.
	for _, tok := range []string{"", "garbage", e.token("seller", uuid.NewString()), e.token("buyer", uuid.NewString())} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, "/v1/deals", dealDraft(1)},
			{http.MethodGet, path, nil},
			{http.MethodPatch, path, map[string]any{"name": "x"}},
			{http.MethodGet, "/v1/deals", nil},
		} {
			r := e.do(req.method, req.path, tok, req.body)
			expectProblem(r, http.StatusUnauthorized, "")
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", req.method, req.path)
			}
		}
	}

	// A buyer without a grant sees nothing, and cannot tell an invisible deal from an absent one.
	invisible := expectProblem(e.do(http.MethodGet, path, buyer, nil), http.StatusNotFound, "")
	missing := expectProblem(e.do(http.MethodGet, absent, buyer, nil), http.StatusNotFound, "")
	if invisible.Detail != missing.Detail || invisible.Title != missing.Title {
		t.Errorf("404 for an invisible deal %+v differs from an absent one %+v", invisible, missing)
	}
	buyerC := dealClient{e, buyer}
	if ids := buyerC.listAll("limit=100"); len(ids) != 0 {
		t.Fatalf("ungranted buyer lists %v", ids)
	}
	if ids := buyerC.listAll("seller=" + sellerID); len(ids) != 0 {
		t.Fatalf("ungranted buyer lists %v with a seller filter", ids)
	}

	// Another seller can neither read, change nor list the deal.
	otherC := dealClient{e, other}
	otherC.create(dealDraft(5))
	expectProblem(e.do(http.MethodGet, path, other, nil), http.StatusNotFound, "")
	expectProblem(otherC.patch(d.ID, map[string]any{"name": "stolen"}), http.StatusNotFound, "")
	expectProblem(otherC.patch(d.ID, map[string]any{"name": "stolen"}, "If-Match", `"1"`), http.StatusNotFound, "")
	if ids := otherC.listAll("limit=100"); slices.Contains(ids, d.ID) || len(ids) != 1 {
		t.Fatalf("other seller lists %v", ids)
	}
	if ids := otherC.listAll("seller=" + sellerID); len(ids) != 0 {
		t.Fatalf("other seller lists %v with the owner's seller filter", ids)
	}
	// The seller's own filter by its own ID works.
	if ids := c.listAll("seller=" + sellerID); !slices.Equal(ids, []string{d.ID}) {
		t.Fatalf("seller's own filter lists %v", ids)
	}

	// Granted: the buyer reads and lists it, but may not create or change deals.
	e.grant(sellerID, seller, buyerID)
	if got := buyerC.get(d.ID); got.ID != d.ID || got.Version != 1 {
		t.Fatalf("granted buyer got %+v", got)
	}
	if got := e.do(http.MethodGet, path, buyer, nil).Header.Get("ETag"); got != `"1"` {
		t.Fatalf("ETag for buyer %q", got)
	}
	if ids := buyerC.listAll("limit=100"); !slices.Equal(ids, []string{d.ID}) {
		t.Fatalf("granted buyer lists %v", ids)
	}
	if ids := buyerC.listAll("seller=" + otherID); len(ids) != 0 {
		t.Fatalf("buyer lists %v of a seller that never granted it", ids)
	}
	expectProblem(buyerC.patch(d.ID, map[string]any{"name": "mine"}), http.StatusForbidden, "")
	expectProblem(e.do(http.MethodPost, "/v1/deals", buyer, dealDraft(1)), http.StatusForbidden, "")
	if got := c.get(d.ID); got.Name != d.Name || got.Version != 1 {
		t.Fatalf("buyer changed the deal: %+v", got)
	}

	// Revoked: hidden again.
	e.do(http.MethodDelete, "/v1/sellers/"+sellerID+"/buyers/"+buyerID, seller, nil).want(http.StatusNoContent)
	expectProblem(e.do(http.MethodGet, path, buyer, nil), http.StatusNotFound, "")
	if ids := buyerC.listAll("limit=100"); len(ids) != 0 {
		t.Fatalf("revoked buyer lists %v", ids)
	}

	// Operators run the platform but do not trade: every deal route is 403.
	op := e.operator()
	expectProblem(e.do(http.MethodPost, "/v1/deals", op, dealDraft(1)), http.StatusForbidden, "")
	expectProblem(e.do(http.MethodGet, path, op, nil), http.StatusForbidden, "")
	expectProblem(e.do(http.MethodPatch, path, op, map[string]any{"name": "x"}, "Content-Type", mergePatch), http.StatusForbidden, "")
	expectProblem(e.do(http.MethodGet, "/v1/deals", op, nil), http.StatusForbidden, "")

	// Absent deals are 404 for their would-be owner too; malformed IDs are 422.
	expectProblem(e.do(http.MethodGet, absent, seller, nil), http.StatusNotFound, "")
	expectProblem(c.patch(uuid.NewString(), map[string]any{"name": "x"}), http.StatusNotFound, "")
	expectProblem(e.do(http.MethodGet, "/v1/deals/not-a-uuid", seller, nil), http.StatusUnprocessableEntity, "path.id")
	expectProblem(c.patch("not-a-uuid", map[string]any{"name": "x"}), http.StatusUnprocessableEntity, "path.id")
	if n := dealCount(c); n != 1 {
		t.Fatalf("seller has %d deals, want 1", n)
	}
}

// TestDealIDFormsNeverFail: the API accepts every UUID spelling its schema
// allows (format: uuid, which includes urn:uuid:…, {…} and unhyphenated
// forms); none of them may make the server fail.
func TestDealIDFormsNeverFail(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	forms := map[string]string{
		"upper":      strings.ToUpper(d.ID),
		"braces":     "{" + d.ID + "}",
		"unhyphened": strings.ReplaceAll(d.ID, "-", ""),
		"urn":        "urn:uuid:" + d.ID,
	}
	for name, id := range forms {
		for _, tok := range []string{seller, buyer} {
			r := e.doRaw(http.MethodGet, "/v1/deals/"+id, tok, nil)
			if r.Status >= 500 {
				t.Errorf("GET /v1/deals/%s (%s): %d %s", id, name, r.Status, r.Body)
			}
		}
		r := e.doRaw(http.MethodPatch, "/v1/deals/"+id, seller, `{}`, "Content-Type", mergePatch)
		if r.Status >= 500 {
			t.Errorf("PATCH /v1/deals/%s (%s): %d %s", id, name, r.Status, r.Body)
		}
		seller := strings.Replace(id, d.ID, sellerID, 1)
		seller = strings.Replace(seller, strings.ToUpper(d.ID), strings.ToUpper(sellerID), 1)
		seller = strings.Replace(seller, strings.ReplaceAll(d.ID, "-", ""), strings.ReplaceAll(sellerID, "-", ""), 1)
		r = e.doRaw(http.MethodGet, "/v1/deals?seller="+url.QueryEscape(seller), buyer, nil)
		if r.Status >= 500 {
			t.Errorf("GET /v1/deals?seller=%s (%s) as buyer: %d %s", seller, name, r.Status, r.Body)
		}
	}
}

// TestListDealsSellerFilterSpellings: the seller filter is a UUID; every
// spelling its schema accepts names the same seller, for the seller itself
// as for its buyers.
func TestListDealsSellerFilterSpellings(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	d := c.create(dealDraft(1))
	for _, spelling := range []string{sellerID, strings.ToUpper(sellerID), "{" + sellerID + "}", strings.ReplaceAll(sellerID, "-", "")} {
		for who, reader := range map[string]dealClient{"seller": c, "buyer": {e, buyer}} {
			if got := reader.listAll("seller=" + url.QueryEscape(spelling)); !slices.Equal(got, []string{d.ID}) {
				t.Errorf("%s with seller=%s lists %v, want [%s]", who, spelling, got, d.ID)
			}
		}
	}
}

func TestIdempotentCreateReplaysTheFirstResponse(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	_, other := e.seller()
	c := dealClient{e, seller}
	body := dealDraft(600, 400)

	first := e.do(http.MethodPost, "/v1/deals", seller, body, "Idempotency-Key", "order-1").want(http.StatusCreated)
	var d1 deal.Deal
	first.decode(&d1)
	if first.Header.Get("Idempotent-Replayed") == "true" {
		t.Fatal("the first response claims to be a replay")
	}

	// The same body, spelt differently (key order, spacing, the default status written out).
	respelt := `{ "items": [{"price":600,"name":"Item 0","id":"sku-0"},{"id":"sku-1","name":"Item 1","price":400}],
		"currency":"gbp", "status": "available", "total_price":1000, "name":"Winter bundle" }`
	for _, b := range []any{body, respelt} {
		r := e.do(http.MethodPost, "/v1/deals", seller, b, "Idempotency-Key", "order-1").want(http.StatusCreated)
		var d deal.Deal
		r.decode(&d)
		if !reflect.DeepEqual(d, d1) {
			t.Fatalf("replay returned %+v, first %+v", d, d1)
		}
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay without Idempotent-Replayed: true")
		}
		if r.Header.Get("Location") != "/v1/deals/"+d1.ID || r.Header.Get("ETag") != `"1"` {
			t.Errorf("replay headers Location %q ETag %q", r.Header.Get("Location"), r.Header.Get("ETag"))
		}
	}

	// The same key with another body is a conflict and stores nothing.
	for _, b := range []any{dealWith(body, "name", "Other"), dealWith(body, "status", "sold"),
		dealWith(body, "discount", map[string]any{"type": "flat", "amount": 1})} {
		expectProblem(e.do(http.MethodPost, "/v1/deals", seller, b, "Idempotency-Key", "order-1"), http.StatusConflict, "")
	}
	// A replay still answers the first deal after a change to it.
	c.patch(d1.ID, map[string]any{"name": "Renamed"}).want(http.StatusOK)
	var again deal.Deal
	e.do(http.MethodPost, "/v1/deals", seller, body, "Idempotency-Key", "order-1").want(http.StatusCreated).decode(&again)
	if again.ID != d1.ID {
		t.Fatalf("replay after a change created %s", again.ID)
	}
	// An invalid body with a used key is still just invalid.
	expectProblem(e.do(http.MethodPost, "/v1/deals", seller, dealWith(body, "total_price", 1), "Idempotency-Key", "order-1"), http.StatusUnprocessableEntity, "body.total_price")

	if n := dealCount(c); n != 1 {
		t.Fatalf("seller has %d deals, want 1", n)
	}
	evs, err := e.store.DealEvents(t.Context(), d1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != deal.EventCreated || evs[1].Type != deal.EventUpdated {
		t.Fatalf("events %+v, want one created and one updated", evs)
	}

	// Keys belong to one seller: another seller's same key is a new deal.
	var od deal.Deal
	e.do(http.MethodPost, "/v1/deals", other, body, "Idempotency-Key", "order-1").want(http.StatusCreated).decode(&od)
	if od.ID == d1.ID || od.Seller == sellerID {
		t.Fatalf("other seller's request replayed the first seller's deal: %+v", od)
	}
	// A new key, or no key at all, creates another deal each time.
	d2 := c.create(body, "Idempotency-Key", "order-2")
	d3 := c.create(body)
	d4 := c.create(body)
	if len(map[string]bool{d1.ID: true, d2.ID: true, d3.ID: true, d4.ID: true}) != 4 {
		t.Fatal("distinct requests shared a deal")
	}
	if n := dealCount(c); n != 4 {
		t.Fatalf("seller has %d deals, want 4", n)
	}
}

func TestIdempotentCreateConcurrent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	body := marshalBody(t, dealDraft(700, 300))
	const n = 20
	results := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = e.doRaw(http.MethodPost, "/v1/deals", seller, body, "Idempotency-Key", "same-key")
		})
	}
	close(start)
	wg.Wait()
	ids := map[string]int{}
	replays := 0
	for _, r := range results {
		if r.Status != http.StatusCreated {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		var d deal.Deal
		r.decode(&d)
		ids[d.ID]++
		if r.Header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d concurrent requests with one key answered %d different deals: %v", n, len(ids), ids)
	}
	if replays != n-1 {
		t.Errorf("%d replays, want %d", replays, n-1)
	}
	list := c.listAll("limit=100")
	if len(list) != 1 {
		t.Fatalf("%d deals stored, want 1", len(list))
	}
	if _, ok := ids[list[0]]; !ok {
		t.Fatalf("stored deal %s is not the one answered", list[0])
	}
	evs, err := e.store.DealEvents(t.Context(), list[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events for the deal, want 1", len(evs))
	}
}

// TestIdempotentCreateConcurrentConflictingBodies races two bodies on one
// key: one body wins and is created once; its twins replay it; the others
// are 409.
func TestIdempotentCreateConcurrentConflictingBodies(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	bodies := [][]byte{marshalBody(t, dealWith(dealDraft(100), "name", "A")), marshalBody(t, dealWith(dealDraft(100), "name", "B"))}
	const n = 20
	results := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = e.doRaw(http.MethodPost, "/v1/deals", seller, bodies[i%2], "Idempotency-Key", "contested")
		})
	}
	close(start)
	wg.Wait()
	names := []string{"A", "B"}
	winner, winnerID := "", ""
	for i, r := range results {
		if r.Status != http.StatusCreated {
			continue
		}
		var d deal.Deal
		r.decode(&d)
		if winner == "" {
			winner, winnerID = d.Name, d.ID
		}
		if d.Name != names[i%2] || d.ID != winnerID {
			t.Fatalf("request with body %s answered deal %s %q; first answer was %s %q", names[i%2], d.ID, d.Name, winnerID, winner)
		}
	}
	for i, r := range results {
		name := names[i%2]
		if want := map[bool]int{true: http.StatusCreated, false: http.StatusConflict}[name == winner]; r.Status != want {
			t.Fatalf("body %s: status %d, want %d: %s", name, r.Status, want, r.Body)
		}
	}
	if got := dealCount(c); got != 1 {
		t.Fatalf("%d deals stored, want 1", got)
	}
}

func TestPatchDeal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(600, 400))

	// merge-patch+json: one field changes, the rest stay.
	r := c.patch(d.ID, map[string]any{"name": "Spring bundle"}).want(http.StatusOK)
	var p deal.Deal
	r.decode(&p)
	if p.Name != "Spring bundle" || p.Version != 2 || p.TotalPrice != 1000 || !reflect.DeepEqual(p.Items, d.Items) ||
		p.Currency != "gbp" || p.Status != deal.StatusAvailable || p.ID != d.ID || p.Seller != d.Seller {
		t.Fatalf("patched %+v", p)
	}
	if r.Header.Get("ETag") != `"2"` {
		t.Fatalf("ETag %q, want \"2\"", r.Header.Get("ETag"))
	}
	if !p.CreatedAt.Equal(d.CreatedAt) || p.UpdatedAt.Before(d.UpdatedAt) {
		t.Fatalf("timestamps created %v→%v updated %v→%v", d.CreatedAt, p.CreatedAt, d.UpdatedAt, p.UpdatedAt)
	}

	// Plain application/json is the same merge patch.
	r = c.patch(d.ID, map[string]any{"status": "sold"}, "Content-Type", "application/json").want(http.StatusOK)
	r.decode(&p)
	if p.Status != deal.StatusSold || p.Version != 3 || r.Header.Get("ETag") != `"3"` {
		t.Fatalf("after application/json patch: %+v, ETag %q", p, r.Header.Get("ETag"))
	}
	// Content types that are not JSON are refused.
	r = c.patch(d.ID, map[string]any{"name": "x"}, "Content-Type", "text/plain")
	if r.Status != http.StatusUnsupportedMediaType && r.Status != http.StatusBadRequest {
		t.Fatalf("text/plain patch: %d %s", r.Status, r.Body)
	}

	// Add a discount, change it, remove it with null.
	p = decodeDeal(t, c.patch(d.ID, map[string]any{"discount": map[string]any{"type": "percentage", "amount": 12.5}}).want(http.StatusOK))
	if p.NetPrice != 875 || amountText(t, p.Discount) != "12.5" || p.Discount.Type != deal.DiscountPercentage || p.Version != 4 {
		t.Fatalf("with discount: %+v", p)
	}
	p = decodeDeal(t, c.patch(d.ID, map[string]any{"discount": map[string]any{"type": "flat", "amount": 1000}}).want(http.StatusOK))
	if p.NetPrice != 0 || amountText(t, p.Discount) != "1000" || p.Version != 5 {
		t.Fatalf("with flat discount: %+v", p)
	}
	p = decodeDeal(t, c.patch(d.ID, `{"discount": null}`).want(http.StatusOK))
	if p.Discount != nil || p.NetPrice != 1000 || p.Version != 6 {
		t.Fatalf("after discount null: %+v", p)
	}

	// Replace items and total together; net price follows.
	items := []map[string]any{{"id": "x", "name": "X", "price": 999}}
	p = decodeDeal(t, c.patch(d.ID, map[string]any{"items": items, "total_price": 999, "discount": map[string]any{"type": "percentage", "amount": 12.5}}).want(http.StatusOK))
	if p.TotalPrice != 999 || p.NetPrice != 874 || len(p.Items) != 1 || p.Version != 7 {
		t.Fatalf("after items: %+v", p)
	}
	// Currency in any case, stored lowercase.
	p = decodeDeal(t, c.patch(d.ID, map[string]any{"currency": "EUR"}).want(http.StatusOK))
	if p.Currency != "eur" || p.Version != 8 {
		t.Fatalf("after currency: %+v", p)
	}
	// Several fields at once are one change.
	p = decodeDeal(t, c.patch(d.ID, map[string]any{"name": "Both", "status": "available"}).want(http.StatusOK))
	if p.Name != "Both" || p.Status != deal.StatusAvailable || p.Version != 9 {
		t.Fatalf("after two fields: %+v", p)
	}
	got := c.get(d.ID)
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("GET %+v, PATCH answered %+v", got, p)
	}
	if e.do(http.MethodGet, "/v1/deals/"+d.ID, seller, nil).Header.Get("ETag") != `"9"` {
		t.Fatal("GET ETag does not follow the version")
	}
}

func decodeDeal(t testing.TB, r *response) deal.Deal {
	t.Helper()
	var d deal.Deal
	r.decode(&d)
	return d
}

func TestPatchDealNoOp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealWith(dealDraft(600, 400), "discount", map[string]any{"type": "percentage", "amount": 12.5}))
	plain := c.create(dealDraft(50))
	for _, tc := range []struct {
		id    string
		patch any
	}{
		{d.ID, `{}`},
		{d.ID, map[string]any{"name": d.Name}},
		{d.ID, map[string]any{"currency": "GBP"}},
		{d.ID, map[string]any{"status": "available"}},
		{d.ID, map[string]any{"total_price": 1000}},
		{d.ID, map[string]any{"items": d.Items, "total_price": 1000}},
		{d.ID, `{"discount": {"type": "percentage", "amount": 12.50}}`},
		{d.ID, `{"discount": {"type": "percentage", "amount": 1.25e1}}`},
		{plain.ID, `{"discount": null}`},
		{d.ID, map[string]any{"name": d.Name, "currency": "gbp", "status": "available"}},
	} {
		r := c.patch(tc.id, tc.patch).want(http.StatusOK)
		got := decodeDeal(t, r)
		if got.Version != 1 || r.Header.Get("ETag") != `"1"` {
			t.Errorf("no-op patch %v: version %d ETag %q", tc.patch, got.Version, r.Header.Get("ETag"))
		}
		want := d
		if tc.id == plain.ID {
			want = plain
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("no-op patch %v answered %+v, want %+v", tc.patch, got, want)
		}
	}
	// A no-op patch with a matching If-Match is still a no-op; with a stale one it is 412.
	c.patch(d.ID, `{}`, "If-Match", `"1"`).want(http.StatusOK)
	expectProblem(c.patch(d.ID, `{}`, "If-Match", `"7"`), http.StatusPreconditionFailed, "")
	for _, id := range []string{d.ID, plain.ID} {
		if got := c.get(id); got.Version != 1 {
			t.Fatalf("deal %s at version %d after no-op patches", id, got.Version)
		}
		evs, err := e.store.DealEvents(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Type != deal.EventCreated {
			t.Fatalf("no-op patches wrote events: %+v", evs)
		}
	}
}

func TestPatchDealIfMatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))

	c.patch(d.ID, map[string]any{"name": "v2"}, "If-Match", `"1"`).want(http.StatusOK)
	p := expectProblem(c.patch(d.ID, map[string]any{"name": "stale"}, "If-Match", `"1"`), http.StatusPreconditionFailed, "")
	if p.Detail == "" {
		t.Fatal("412 without detail")
	}
	expectProblem(c.patch(d.ID, map[string]any{"name": "future"}, "If-Match", `"3"`), http.StatusPreconditionFailed, "")
	expectProblem(c.patch(d.ID, map[string]any{"name": "garbage"}, "If-Match", `"abc"`), http.StatusPreconditionFailed, "")
	// Weak and unquoted forms of the current version, and *, match.
	c.patch(d.ID, map[string]any{"name": "v3"}, "If-Match", `W/"2"`).want(http.StatusOK)
	c.patch(d.ID, map[string]any{"name": "v4"}, "If-Match", `3`).want(http.StatusOK)
	c.patch(d.ID, map[string]any{"name": "v5"}, "If-Match", `*`).want(http.StatusOK)
	// The ETag of a GET is what If-Match takes.
	etag := e.do(http.MethodGet, "/v1/deals/"+d.ID, seller, nil).want(http.StatusOK).Header.Get("ETag")
	if etag != `"5"` {
		t.Fatalf("ETag %q", etag)
	}
	r := c.patch(d.ID, map[string]any{"name": "v6"}, "If-Match", etag).want(http.StatusOK)
	if r.Header.Get("ETag") != `"6"` {
		t.Fatalf("ETag after patch %q", r.Header.Get("ETag"))
	}
	if got := c.get(d.ID); got.Name != "v6" || got.Version != 6 {
		t.Fatalf("%+v", got)
	}
	evs, err := e.store.DealEvents(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6 (412s write none)", len(evs))
	}
}

func TestPatchDealConcurrentIfMatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	const n = 20
	results := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		body := marshalBody(t, map[string]any{"name": fmt.Sprintf("writer %d", i)})
		wg.Go(func() {
			<-start
			results[i] = e.doRaw(http.MethodPatch, "/v1/deals/"+d.ID, seller, body, "Content-Type", mergePatch, "If-Match", `"1"`)
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, r := range results {
		switch r.Status {
		case http.StatusOK:
			if winner != "" {
				t.Fatalf("two patches with If-Match \"1\" succeeded")
			}
			winner = fmt.Sprintf("writer %d", i)
			if got := decodeDeal(t, r); got.Version != 2 || got.Name != winner {
				t.Fatalf("winner answered %+v", got)
			}
		case http.StatusPreconditionFailed:
			r.problem()
		default:
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	}
	if winner == "" {
		t.Fatal("no patch succeeded")
	}
	if got := c.get(d.ID); got.Version != 2 || got.Name != winner {
		t.Fatalf("deal %+v, want version 2 named %q", got, winner)
	}
	evs, err := e.store.DealEvents(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
}

// TestPatchDealConcurrentWithoutIfMatch: patches without If-Match queue up;
// every one applies, and versions are handed out one by one.
func TestPatchDealConcurrentWithoutIfMatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	const n = 20
	results := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		body := marshalBody(t, map[string]any{"name": fmt.Sprintf("writer %d", i)})
		wg.Go(func() {
			<-start
			results[i] = e.doRaw(http.MethodPatch, "/v1/deals/"+d.ID, seller, body, "Content-Type", mergePatch)
		})
	}
	close(start)
	wg.Wait()
	versions := map[int64]bool{}
	for _, r := range results {
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		versions[decodeDeal(t, r).Version] = true
	}
	for v := int64(2); v <= n+1; v++ {
		if !versions[v] {
			t.Fatalf("no patch answered version %d: %v", v, versions)
		}
	}
	if got := c.get(d.ID); got.Version != n+1 {
		t.Fatalf("final version %d, want %d", got.Version, n+1)
	}
	evs, err := e.store.DealEvents(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n+1 {
		t.Fatalf("%d events, want %d", len(evs), n+1)
	}
	for i, ev := range evs {
		if ev.Data.Deal.Version != int64(i+1) {
			t.Fatalf("event %d carries version %d", i, ev.Data.Deal.Version)
		}
	}
}

func TestPatchDealValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealWith(dealDraft(600, 400), "discount", map[string]any{"type": "flat", "amount": 900}))
	for _, tc := range []struct {
		name     string
		patch    any
		code     int
		location string
	}{
		{"name null", `{"name": null}`, 422, "body.name"},
		{"items null", `{"items": null}`, 422, "body.items"},
		{"total_price null", `{"total_price": null}`, 422, "body.total_price"},
		{"currency null", `{"currency": null}`, 422, "body.currency"},
		{"status null", `{"status": null}`, 422, "body.status"},
		{"empty name", map[string]any{"name": ""}, 422, "body.name"},
		{"blank name", map[string]any{"name": "  "}, 422, "body.name"},
		{"long name", map[string]any{"name": strings.Repeat("x", 201)}, 422, "body.name"},
		{"total without items", map[string]any{"total_price": 999}, 422, "body.total_price"},
		{"items without total", map[string]any{"items": []any{map[string]any{"id": "a", "name": "A", "price": 1}}}, 422, "body.total_price"},
		{"no items", map[string]any{"items": []any{}, "total_price": 0}, 422, "body.items"},
		{"negative price", map[string]any{"items": []any{map[string]any{"id": "a", "name": "A", "price": -1}}, "total_price": 0}, 422, "body.items[0].price"},
		{"duplicate item ids", map[string]any{"items": []any{map[string]any{"id": "a", "name": "A", "price": 500}, map[string]any{"id": "a", "name": "B", "price": 500}}, "total_price": 1000}, 422, "body.items[1].id"},
		{"flat discount above the new total", map[string]any{"items": []any{map[string]any{"id": "a", "name": "A", "price": 500}}, "total_price": 500}, 422, "body.discount.amount"},
		{"flat discount above total", map[string]any{"discount": map[string]any{"type": "flat", "amount": 1001}}, 422, "body.discount.amount"},
		{"percentage three decimals", map[string]any{"discount": map[string]any{"type": "percentage", "amount": 1.005}}, 422, "body.discount.amount"},
		{"percentage over 100", map[string]any{"discount": map[string]any{"type": "percentage", "amount": 101}}, 422, "body.discount.amount"},
		{"bad discount type", map[string]any{"discount": map[string]any{"type": "bogo", "amount": 1}}, 422, "body.discount.type"},
		{"unknown currency", map[string]any{"currency": "abc"}, 422, "body.currency"},
		{"unknown status", map[string]any{"status": "reserved"}, 422, "body.status"},
		{"server field version", map[string]any{"version": 5}, 422, "body.version"},
		{"server field net_price", map[string]any{"net_price": 5}, 422, "body.net_price"},
		{"server field seller", map[string]any{"seller": uuid.NewString()}, 422, "body.seller"},
		{"unknown field", map[string]any{"colour": "red"}, 422, "body.colour"},
		{"malformed", `{"name": `, 400, ""},
		{"not an object", `[1]`, 422, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dealClient{setup(t), seller}
			expectProblem(c.patch(d.ID, tc.patch), tc.code, tc.location)
			expectProblem(c.patch(d.ID, tc.patch, "Content-Type", "application/json"), tc.code, tc.location)
		})
	}
	t.Cleanup(func() {
		// Nothing was applied and nothing recorded. (Cleanup runs after the
		// parallel subtests finish.)
		if got := c.get(d.ID); got.Version != 1 || got.Name != d.Name {
			t.Errorf("refused patches changed the deal: %+v", got)
		}
		evs, err := e.store.DealEvents(context.Background(), d.ID)
		if err != nil {
			t.Error(err)
		}
		if len(evs) != 1 {
			t.Errorf("%d events after refused patches, want 1", len(evs))
		}
	})
}

func TestListDeals(t *testing.T) {
	t.Parallel()
	e := setup(t)
	aID, a := e.seller()
	bID, b := e.seller()
	cID, cTok := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(aID, a, buyerID)
	e.grant(bID, b, buyerID)
	ac, bc, cc := dealClient{e, a}, dealClient{e, b}, dealClient{e, cTok}
	buyerC := dealClient{e, buyer}

	var all, aOnly, sold, aSold []string // newest first
	for i := range 25 {
		owner, ownerID := ac, aID
		if i%3 == 1 {
			owner, ownerID = bc, bID
		}
		status := "available"
		if i%4 == 0 {
			status = "sold"
		}
		d := owner.create(dealWith(dealDraft(int64(i+1)), "status", status, "name", fmt.Sprintf("deal %d", i)))
		all = append([]string{d.ID}, all...)
		if ownerID == aID {
			aOnly = append([]string{d.ID}, aOnly...)
		}
		if status == "sold" {
			sold = append([]string{d.ID}, sold...)
			if ownerID == aID {
				aSold = append([]string{d.ID}, aSold...)
			}
		}
		cc.create(dealDraft(1)) // a seller that never granted the buyer
	}

	// Default page size is 20, newest first.
	p := buyerC.list("")
	if got := dealIDs(p.Data); !slices.Equal(got, all[:20]) || p.NextCursor == nil {
		t.Fatalf("first page %v (next %v), want %v", got, p.NextCursor, all[:20])
	}
	for i := 1; i < len(p.Data); i++ {
		if p.Data[i].CreatedAt.After(p.Data[i-1].CreatedAt) {
			t.Fatalf("page not newest first at %d", i)
		}
	}
	if got := buyerC.listAll("limit=7"); !slices.Equal(got, all) {
		t.Fatalf("buyer pages %v, want %v", got, all)
	}
	if got := buyerC.listAll("limit=100"); !slices.Equal(got, all) {
		t.Fatalf("buyer limit=100 %v", got)
	}
	// Filters, alone and together, for buyer and seller.
	for _, tc := range []struct {
		c     dealClient
		query string
		want  []string
	}{
		{buyerC, "seller=" + aID, aOnly},
		{buyerC, "status=sold", sold},
		{buyerC, "seller=" + aID + "&status=sold", aSold},
		{buyerC, "seller=" + aID + "&status=sold&limit=1", aSold},
		{buyerC, "seller=" + cID, nil},
		{buyerC, "seller=" + uuid.NewString(), nil},
		{ac, "", aOnly},
		{ac, "status=sold&limit=2", aSold},
		{ac, "seller=" + aID + "&status=sold", aSold},
		{ac, "seller=" + bID, nil},
	} {
		if got := tc.c.listAll(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	avail := 0
	for _, d := range buyerC.list("status=available&limit=100").Data {
		if d.Status != deal.StatusAvailable {
			t.Fatalf("status filter let through %+v", d)
		}
		avail++
	}
	if avail != len(all)-len(sold) {
		t.Fatalf("%d available, want %d", avail, len(all)-len(sold))
	}
	// The last page has next_cursor null, also when it is exactly full.
	if p := buyerC.list(fmt.Sprintf("limit=%d", len(all))); p.NextCursor != nil || len(p.Data) != len(all) {
		t.Fatalf("exactly full page: %d deals, next %v", len(p.Data), p.NextCursor)
	}
	if p := buyerC.list(fmt.Sprintf("limit=%d", len(all)-1)); p.NextCursor == nil {
		t.Fatal("page one short of the end has no next_cursor")
	} else if last := buyerC.list("limit=100&cursor=" + url.QueryEscape(*p.NextCursor)); len(last.Data) != 1 || last.NextCursor != nil {
		t.Fatalf("last page %d deals, next %v", len(last.Data), last.NextCursor)
	}
	// An empty list is an empty array.
	_, nobody := e.buyer()
	if p := (dealClient{e, nobody}).list(""); len(p.Data) != 0 || p.NextCursor != nil {
		t.Fatalf("empty list %+v", p)
	}
	// Limits.
	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5", "status=gone", "seller=not-a-uuid"} {
		expectProblem(e.do(http.MethodGet, "/v1/deals?"+q, buyer, nil), http.StatusUnprocessableEntity, "")
	}
	expectProblem(e.do(http.MethodGet, "/v1/deals?limit=0", buyer, nil), http.StatusUnprocessableEntity, "query.limit")
	expectProblem(e.do(http.MethodGet, "/v1/deals?limit=101", a, nil), http.StatusUnprocessableEntity, "query.limit")
	if p := buyerC.list("limit=1"); len(p.Data) != 1 || p.NextCursor == nil {
		t.Fatalf("limit=1: %+v", p)
	}
	// The list shows each deal as GET does.
	if got, want := buyerC.list("limit=1").Data[0], buyerC.get(all[0]); !reflect.DeepEqual(got, want) {
		t.Fatalf("list item %+v, GET %+v", got, want)
	}
}

// TestListDealsCursorStableUnderInserts pages through a seller's deals
// while new deals keep arriving, both between page reads and concurrently
// with them: the pages hold exactly the deals that existed before the first
// page, each once, in order.
func TestListDealsCursorStableUnderInserts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	var want []string
	for i := range 30 {
		d := c.create(dealWith(dealDraft(int64(i)), "name", fmt.Sprintf("old %d", i)))
		want = append([]string{d.ID}, want...)
	}
	for _, reader := range []dealClient{c, {e, buyer}} {
		first := reader.list("limit=4")
		got := dealIDs(first.Data)

		stop := make(chan struct{})
		var failures []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		body := marshalBody(t, dealWith(dealDraft(1), "name", "new"))
		for range 3 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if r := e.doRaw(http.MethodPost, "/v1/deals", seller, body); r.Status != http.StatusCreated {
						mu.Lock()
						failures = append(failures, string(r.Body))
						mu.Unlock()
					}
				}
			})
		}
		cursor := first.NextCursor
		for cursor != nil {
			c.create(dealWith(dealDraft(2), "name", "between pages"))
			p := reader.list("limit=4&cursor=" + url.QueryEscape(*cursor))
			got = append(got, dealIDs(p.Data)...)
			cursor = p.NextCursor
		}
		close(stop)
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("concurrent creates failed: %v", failures)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages read under inserts:\n got %v\nwant %v", got, want)
		}
		// The new deals are all there for a fresh read, newest first.
		fresh := reader.listAll("limit=100")
		if len(fresh) <= len(want) || !slices.Equal(fresh[len(fresh)-len(want):], want) {
			t.Fatalf("fresh list of %d does not end with the old deals", len(fresh))
		}
		want = fresh
	}
}

func TestListDealsRejectsForeignCursors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	e.grant(sellerID, seller, buyerID)
	c := dealClient{e, seller}
	for range 3 {
		c.create(dealDraft(1))
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := uuid.NewString()
	for _, cursor := range []string{
		"garbage",
		"!!!!",
		"%%%",
		"eyJ9==",
		b64("not json"),
		b64("null"),
		b64("[]"),
		b64("{}"),
		b64(`{"t":"2024-01-01T00:00:00Z"}`),
		b64(`{"t":"2024-01-01T00:00:00Z","i":"not-a-uuid"}`),
		b64(`{"t":"yesterday","i":"` + id + `"}`),
		b64(`{"t":42,"i":"` + id + `"}`),
		b64(`{"t":"2024-01-01T00:00:00Z","i":"` + id + "\x00" + `"}`),
		b64(`{"t":"2024-01-01T00:00:00Z","i":"` + strings.Repeat("a", 300) + `"}`),
		base64.StdEncoding.EncodeToString([]byte(`{"t":"2024-01-01T00:00:00Z","i":"` + id + `"}??`)),
		strings.Repeat("A", 513),
	} {
		for _, tok := range []string{seller, buyer} {
			r := e.do(http.MethodGet, "/v1/deals?cursor="+url.QueryEscape(cursor), tok, nil)
			expectProblem(r, http.StatusUnprocessableEntity, "query.cursor")
		}
	}
}

// TestListDealsCursorWithURNUUID: a cursor whose ID is a UUID in urn form
// passes the cursor check (uuid.Parse accepts it) but not PostgreSQL's uuid
// input; it must still be a 422, not a 500.
func TestListDealsCursorWithURNUUID(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	dealClient{e, seller}.create(dealDraft(1))
	cursor := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2024-01-01T00:00:00Z","i":"urn:uuid:` + uuid.NewString() + `"}`))
	// The id is read in its canonical spelling: a valid position, not a 500.
	r := e.do(http.MethodGet, "/v1/deals?cursor="+cursor, seller, nil).want(http.StatusOK)
	var page struct{ Data []json.RawMessage }
	r.decode(&page)
	if len(page.Data) != 0 {
		t.Fatalf("a position before every deal listed %d deals", len(page.Data))
	}
}
