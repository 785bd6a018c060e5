package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
)

// caller is one column of the authorisation matrix.
type caller int

const (
	noToken        caller = iota
	operator              // any operator
	ownerSeller           // the seller that owns the target deal and made the grants
	otherSeller           // a seller with no relation to the targets
	grantedBuyer          // a buyer the owner authorised; owns the target endpoint and delivery
	ungrantedBuyer        // a buyer nobody authorised
	revokedBuyer          // a buyer the owner authorised, then revoked
	callerCount
)

var callerNames = [...]string{"no token", "operator", "owning seller", "other seller", "granted buyer", "ungranted buyer", "revoked buyer"}

func (c caller) String() string { return callerNames[c] }

// world is one set of target objects and the callers around them. Every
// cell of the matrix gets its own, so writes in one cell (a revoke, a
// delete) cannot change the answer of another.
type world struct {
	ids    [callerCount]string // account ids; empty for no token and operator
	tokens [callerCount]string
	deal   deal.Deal
	// eventID is the deal.created event of deal.
	eventID  string
	endpoint api.EndpointWithSecret
	delivery string
	// invoice is the granted buyer's purchase of another of the owner's deals.
	invoice invoice.Invoice
	// auction is the owner's auction of a third deal, without bids.
	auction auction.Auction
}

func newWorld(e *env) *world {
	e.t.Helper()
	w := &world{}
	w.tokens[operator] = e.operator()
	w.ids[ownerSeller], w.tokens[ownerSeller] = e.seller()
	w.ids[otherSeller], w.tokens[otherSeller] = e.seller()
	for _, c := range []caller{grantedBuyer, ungrantedBuyer, revokedBuyer} {
		w.ids[c], w.tokens[c] = e.buyer()
	}
	owner := w.tokens[ownerSeller]
	e.grant(w.ids[ownerSeller], owner, w.ids[grantedBuyer])
	e.grant(w.ids[ownerSeller], owner, w.ids[revokedBuyer])
	e.do(http.MethodDelete, grantPath(w.ids[ownerSeller], w.ids[revokedBuyer]), owner, nil).want(http.StatusNoContent)

	draft := dealDraft(600, 400)
	draft["name"] = "Matrix deal " + uuid.NewString()
	e.do(http.MethodPost, "/v1/deals", owner, draft).want(http.StatusCreated).decode(&w.deal)
	if err := scanOwnRow(context.Background(), `SELECT id FROM events WHERE deal_id = $1`, []any{w.deal.ID}, &w.eventID); err != nil {
		e.t.Fatalf("event of deal %s: %v", w.deal.ID, err)
	}
	e.do(http.MethodPost, endpointsPath, w.tokens[grantedBuyer], map[string]any{"url": "https://hooks.example.com/" + uuid.NewString()}).
		want(http.StatusCreated).decode(&w.endpoint)
	d := deliveryAt(w.ids[grantedBuyer], w.endpoint.ID, "failed", time.Now())
	d.EventID = w.eventID
	insertDeliveries(e.t, d)
	w.delivery = d.ID
	sold := dealDraft(300, 200)
	var soldDeal deal.Deal
	e.do(http.MethodPost, "/v1/deals", owner, sold).want(http.StatusCreated).decode(&soldDeal)
	e.do(http.MethodPost, "/v1/deals/"+soldDeal.ID+"/purchase", w.tokens[grantedBuyer], nil, "Idempotency-Key", "matrix").
		want(http.StatusCreated).decode(&w.invoice)
	var auctioned deal.Deal
	e.do(http.MethodPost, "/v1/deals", owner, dealDraft(300, 200)).want(http.StatusCreated).decode(&auctioned)
	e.do(http.MethodPost, "/v1/deals/"+auctioned.ID+"/auctions", owner, auctionDraft(time.Hour)).
		want(http.StatusCreated).decode(&w.auction)
	return w
}

// private lists what c must never find in any answer: the deal and its
// event belong to the owner and the buyers it authorises; the endpoint,
// its URL and its delivery to the granted buyer alone.
func (w *world) private(c caller) []string {
	dealMarks := []string{w.deal.ID, w.deal.Name, w.eventID}
	endpointMarks := []string{w.endpoint.ID, w.endpoint.URL, w.endpoint.Secret, w.delivery}
	switch c {
	case ownerSeller:
		return endpointMarks
	case grantedBuyer:
		return []string{w.endpoint.Secret}
	case operator:
		return append(dealMarks, endpointMarks...)
	}
	return append(append(dealMarks, endpointMarks...), w.invoice.ID, w.auction.ID)
}

// matrixRow is one operation: how to call it on the world's targets and
// what each caller must get.
type matrixRow struct {
	params func(*world) map[string]string // path parameters by name
	query  func(*world) string
	body   func(*world) any
	header []string
	// want is the status for each caller, in caller order.
	want [callerCount]int
	// shows is what a successful answer must contain for the callers
	// entitled to the target (sellers' and buyers' own views).
	shows func(*world) string
	// ownView marks a list of the caller's own things (endpoints,
	// deliveries, events) that the owning seller may read but that shows
	// only the granted buyer's targets in.
	ownView bool
}

func statuses(s ...int) [callerCount]int {
	if len(s) != int(callerCount) {
		panic("one status per caller")
	}
	return [callerCount]int(s)
}

// matrix has one row per operation ID of the served OpenAPI document.
var matrix = map[string]matrixRow{
	"create-seller": {
		body: func(*world) any { return map[string]any{"name": "Matrix seller"} },
		want: statuses(401, 201, 403, 403, 403, 403, 403),
	},
	"get-seller": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.ids[ownerSeller]} },
		want:   statuses(401, 200, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.ids[ownerSeller] },
	},
	"create-buyer": {
		body: func(*world) any { return map[string]any{"name": "Matrix buyer"} },
		want: statuses(401, 201, 403, 403, 403, 403, 403),
	},
	"get-buyer": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.ids[grantedBuyer]} },
		want:   statuses(401, 200, 403, 403, 200, 404, 404),
		shows:  func(w *world) string { return w.ids[grantedBuyer] },
	},
	"grant-buyer": {
		params: func(w *world) map[string]string {
			return map[string]string{"seller_id": w.ids[ownerSeller], "buyer_id": w.ids[ungrantedBuyer]}
		},
		want: statuses(401, 204, 204, 404, 403, 403, 403),
	},
	"revoke-buyer": {
		params: func(w *world) map[string]string {
			return map[string]string{"seller_id": w.ids[ownerSeller], "buyer_id": w.ids[grantedBuyer]}
		},
		want: statuses(401, 204, 204, 404, 403, 403, 403),
	},
	"list-seller-buyers": {
		params: func(w *world) map[string]string { return map[string]string{"seller_id": w.ids[ownerSeller]} },
		want:   statuses(401, 200, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.ids[grantedBuyer] },
	},
	"list-buyer-sellers": {
		params: func(w *world) map[string]string { return map[string]string{"buyer_id": w.ids[grantedBuyer]} },
		want:   statuses(401, 200, 403, 403, 200, 404, 404),
		shows:  func(w *world) string { return w.ids[ownerSeller] },
	},
	"create-deal": {
		body: func(*world) any { return dealDraft(100) },
		want: statuses(401, 403, 201, 201, 403, 403, 403),
	},
	"get-deal": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.deal.ID} },
		want:   statuses(401, 403, 200, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.deal.Name },
	},
	"update-deal": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.deal.ID} },
		body:   func(*world) any { return map[string]any{"status": "sold"} },
		header: []string{"Content-Type", mergePatch},
		want:   statuses(401, 403, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.deal.Name },
	},
	"list-deals": {
		query: func(w *world) string { return "seller=" + w.ids[ownerSeller] },
		want:  statuses(401, 403, 200, 200, 200, 200, 200),
		shows: func(w *world) string { return w.deal.ID },
	},
	"list-events": {
		ownView: true,
		want:    statuses(401, 403, 200, 200, 200, 200, 200),
		shows:   func(w *world) string { return w.eventID },
	},
	"create-webhook-endpoint": {
		body: func(*world) any { return map[string]any{"url": "https://other.example.com/hook"} },
		want: statuses(401, 403, 201, 201, 201, 201, 201),
	},
	"list-webhook-endpoints": {
		ownView: true,
		want:    statuses(401, 403, 200, 200, 200, 200, 200),
		shows:   func(w *world) string { return w.endpoint.URL },
	},
	"get-webhook-endpoint": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.endpoint.ID} },
		want:   statuses(401, 403, 404, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.endpoint.URL },
	},
	"update-webhook-endpoint": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.endpoint.ID} },
		body:   func(*world) any { return map[string]any{"description": "changed", "enabled": false} },
		want:   statuses(401, 403, 404, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.endpoint.URL },
	},
	"delete-webhook-endpoint": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.endpoint.ID} },
		want:   statuses(401, 403, 404, 404, 204, 404, 404),
	},
	"rotate-webhook-endpoint-secret": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.endpoint.ID} },
		want:   statuses(401, 403, 404, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.endpoint.URL },
	},
	"list-webhook-deliveries": {
		query:   func(w *world) string { return "endpoint_id=" + w.endpoint.ID },
		ownView: true,
		want:    statuses(401, 403, 200, 200, 200, 200, 200),
		shows:   func(w *world) string { return w.delivery },
	},
	"purchase-deal": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.deal.ID} },
		header: []string{"Idempotency-Key", "matrix-purchase"},
		want:   statuses(401, 403, 403, 403, 201, 404, 404),
		shows:  func(w *world) string { return w.deal.ID },
	},
	"list-invoices": {
		want:  statuses(401, 200, 200, 200, 200, 200, 200),
		shows: func(w *world) string { return w.invoice.ID },
	},
	"get-invoice": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.invoice.ID} },
		want:   statuses(401, 200, 200, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.invoice.Number },
	},
	"get-invoice-pdf": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.invoice.ID} },
		want:   statuses(401, 200, 200, 404, 200, 404, 404),
	},
	"pay-invoice": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.invoice.ID} },
		body:   func(w *world) any { return map[string]any{"amount": w.invoice.Total, "reference": "matrix"} },
		want:   statuses(401, 200, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.invoice.ID },
	},
	"void-invoice": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.invoice.ID} },
		want:   statuses(401, 200, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.invoice.ID },
	},
	"create-auction": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.deal.ID} },
		body:   func(*world) any { return auctionDraft(time.Hour) },
		want:   statuses(401, 403, 201, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.deal.ID },
	},
	"list-auctions": {
		want:  statuses(401, 200, 200, 200, 200, 200, 200),
		shows: func(w *world) string { return w.auction.ID },
	},
	"get-auction": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.auction.ID} },
		want:   statuses(401, 200, 200, 404, 200, 404, 404),
		shows:  func(w *world) string { return w.auction.ID },
	},
	"place-bid": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.auction.ID} },
		header: []string{"Idempotency-Key", "matrix-bid"},
		body:   func(w *world) any { return map[string]any{"amount": w.auction.StartPrice} },
		want:   statuses(401, 403, 403, 403, 201, 404, 404),
		shows:  func(w *world) string { return w.auction.ID },
	},
	"list-bids": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.auction.ID} },
		want:   statuses(401, 200, 200, 404, 200, 404, 404),
	},
	"close-auction": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.auction.ID} },
		want:   statuses(401, 403, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.auction.ID },
	},
	"cancel-auction": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.auction.ID} },
		want:   statuses(401, 200, 200, 404, 403, 403, 403),
		shows:  func(w *world) string { return w.auction.ID },
	},
	"retry-webhook-delivery": {
		params: func(w *world) map[string]string { return map[string]string{"id": w.delivery} },
		want:   statuses(401, 403, 404, 404, 202, 404, 404),
		shows:  func(w *world) string { return w.delivery },
	},
}

// specOperation is one operation of the served document.
type specOperation struct {
	ID, Method, Path string
	Secured          bool
	// Body says the operation takes a request body.
	Body bool
	// Query names the operation's query parameters.
	Query []string
}

// servedOperations reads /openapi.json from the handler.
func servedOperations(e *env) []specOperation {
	e.t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Security    []map[string]any `json:"security"`
			RequestBody json.RawMessage  `json:"requestBody"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	e.do(http.MethodGet, "/openapi.json", "", nil).want(http.StatusOK).decode(&doc)
	var ops []specOperation
	for path, item := range doc.Paths {
		for method, op := range item {
			var query []string
			for _, p := range op.Parameters {
				if p.In == "query" {
					query = append(query, p.Name)
				}
			}
			ops = append(ops, specOperation{ID: op.OperationID, Method: strings.ToUpper(method), Path: path,
				Secured: len(op.Security) > 0, Body: len(op.RequestBody) > 0, Query: query})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].ID < ops[j].ID })
	return ops
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestAuthorizationMatrix calls every operation of the served OpenAPI
// document as every kind of caller, each cell on its own fresh targets,
// and checks the status, that refusals are problems that give nothing
// away, and that no answer ever carries what the caller may not see.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	ops := servedOperations(e)
	if len(ops) < len(matrix) {
		t.Fatalf("the document has %d operations, the matrix %d rows", len(ops), len(matrix))
	}
	served := map[string]bool{}
	for _, op := range ops {
		served[op.ID] = true
	}
	for id := range matrix {
		if !served[id] {
			t.Errorf("matrix row %q names no operation of the document", id)
		}
	}
	for _, op := range ops {
		row, ok := matrix[op.ID]
		if !ok {
			t.Errorf("%s %s (%s) has no row in the authorisation matrix: add one", op.Method, op.Path, op.ID)
			continue
		}
		if !op.Secured {
			t.Errorf("%s %s (%s) declares no security", op.Method, op.Path, op.ID)
		}
		t.Run(op.ID, func(t *testing.T) {
			t.Parallel()
			for c := range callerCount {
				t.Run(c.String(), func(t *testing.T) {
					t.Parallel()
					e := e.in(t)
					checkCell(e, op, row, c, newWorld(e))
				})
			}
		})
	}
}

// requestPath is op's path on w's targets, with row's query.
func requestPath(t testing.TB, op specOperation, row matrixRow, w *world) string {
	t.Helper()
	var params map[string]string
	if row.params != nil {
		params = row.params(w)
	}
	path := pathParam.ReplaceAllStringFunc(op.Path, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := params[name]
		if !ok {
			t.Fatalf("%s: no value for path parameter %q", op.ID, name)
		}
		return url.PathEscape(v)
	})
	if row.query != nil {
		path += "?" + row.query(w)
	}
	return path
}

// entitled is the first caller that the row lets succeed.
func (row matrixRow) entitled() caller {
	for c := range callerCount {
		if row.want[c] >= 200 && row.want[c] < 300 {
			return c
		}
	}
	panic("no caller may use the operation")
}

func checkCell(e *env, op specOperation, row matrixRow, c caller, w *world) {
	t := e.t
	t.Helper()
	path := requestPath(t, op, row, w)
	var body any
	if row.body != nil {
		body = row.body(w)
	}
	r := e.do(op.Method, path, w.tokens[c], body, row.header...)
	want := row.want[c]
	if r.Status != want {
		t.Fatalf("%s %s as %s: status %d, want %d: %s", op.Method, path, c, r.Status, want, r.Body)
	}
	switch {
	case want == http.StatusUnauthorized:
		r.unauthorized()
	case want >= 400:
		p := r.wantProblem(want)
		// A refusal says what was refused, never what is there.
		if want == http.StatusNotFound && p.Detail != "not found" {
			t.Fatalf("404 detail %q says more than \"not found\"", p.Detail)
		}
	}
	for _, mark := range w.private(c) {
		if mark != "" && strings.Contains(string(r.Body), mark) {
			t.Fatalf("%s %s as %s (%d) reveals %q: %s", op.Method, path, c, r.Status, mark, r.Body)
		}
		for _, vs := range r.Header {
			if slices.ContainsFunc(vs, func(v string) bool { return mark != "" && strings.Contains(v, mark) }) {
				t.Fatalf("%s %s as %s: a header reveals %q: %v", op.Method, path, c, mark, r.Header)
			}
		}
	}
	if row.shows != nil && want >= 200 && want < 300 && c != ungrantedBuyer && c != revokedBuyer && c != otherSeller &&
		!(row.ownView && c == ownerSeller) {
		if mark := row.shows(w); !strings.Contains(string(r.Body), mark) {
			t.Fatalf("%s %s as %s: the answer does not show %q: %s", op.Method, path, c, mark, r.Body)
		}
	}
	if want >= 200 && want < 300 && len(r.Body) > 0 && r.Header.Get("Content-Type") != "application/pdf" && !json.Valid(r.Body) {
		t.Fatalf("%s %s as %s: body is not JSON: %s", op.Method, path, c, r.Body)
	}
}
