package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/deal"
)

// countingBody is a request body of total bytes, prefix then filler,
// that counts how much of it the server reads.
type countingBody struct {
	prefix []byte
	filler byte
	total  int64
	read   atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n := b.read.Load()
	if n >= b.total {
		return 0, io.EOF
	}
	m := min(int64(len(p)), b.total-n)
	for i := range p[:m] {
		if off := n + int64(i); off < int64(len(b.prefix)) {
			p[i] = b.prefix[off]
		} else {
			p[i] = b.filler
		}
	}
	b.read.Add(m)
	return int(m), nil
}

// send makes a request with an arbitrary body reader and raw headers.
func (e *env) send(method, path string, body io.Reader, headers ...string) *response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.serve(req)
}

// try is do, except that a panic in the handler fails the test with its
// value rather than ending the test binary (net/http would recover it and
// drop the connection: the client gets no answer at all).
func (e *env) try(method, path, token string, body any, headers ...string) (r *response) {
	e.t.Helper()
	defer func() {
		if v := recover(); v != nil {
			e.t.Errorf("%s %s: the handler panicked: %v", method, path, v)
			r = nil
		}
	}()
	return e.do(method, path, token, body, headers...)
}

// eachOperation runs f in a parallel subtest for every operation of the
// served document, with fresh targets and the first caller the
// authorisation matrix lets succeed.
func eachOperation(t *testing.T, e *env, bodyOnly bool, f func(e *env, op specOperation, row matrixRow, w *world, c caller)) {
	for _, op := range servedOperations(e) {
		row, ok := matrix[op.ID]
		if !ok || bodyOnly && !op.Body {
			continue // TestAuthorizationMatrix reports operations without a row
		}
		t.Run(op.ID, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			w := newWorld(e)
			f(e, op, row, w, row.entitled())
		})
	}
}

// contentType is the request content type an operation's row uses.
func (row matrixRow) contentType() string {
	for i := 0; i+1 < len(row.header); i += 2 {
		if http.CanonicalHeaderKey(row.header[i]) == "Content-Type" {
			return row.header[i+1]
		}
	}
	return "application/json"
}

// TestOversizedBodyIsNotReadWhole sends 50 MiB to every operation: those
// that take a body answer 413 having read no more than the 1 MiB limit,
// the others answer as usual without reading it at all.
func TestOversizedBodyIsNotReadWhole(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	const total = 50 << 20
	eachOperation(t, e, false, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		body := &countingBody{prefix: []byte(`{"name":"`), filler: 'a', total: total}
		start := time.Now()
		r := e.send(op.Method, requestPath(e.t, op, row, w), body,
			append([]string{"Content-Type", row.contentType(), "Authorization", "Bearer " + w.tokens[c]}, row.header...)...)
		if op.Body {
			r.wantProblem(http.StatusRequestEntityTooLarge)
		} else {
			r.want(row.want[c])
		}
		read := body.read.Load()
		if read > 1<<20+64<<10 {
			e.t.Fatalf("read %d of %d bytes before answering %d", read, int64(total), r.Status)
		}
		e.t.Logf("%d after reading %d bytes in %v", r.Status, read, time.Since(start))
	})
}

// nested returns depth nested JSON arrays around inner.
func nested(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

func repeatJSON(n int, item string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

func manyProperties(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"p%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

// distinctStrings is a JSON array of n different strings.
func distinctStrings(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"x%d"`, i)
	}
	b.WriteString("]")
	return b.String()
}

// TestDeepAndHugeJSONNeverBreaks sends every operation with a body
// pathological JSON, all under the size limit: each is refused with a 4xx,
// never a 5xx, in bounded time. (The shapes whose answers grow with the
// square of the input are in TestValidationAnswerIsBounded, at sizes that
// cannot exhaust the test's memory.)
func TestDeepAndHugeJSONNeverBreaks(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	bodies := []struct{ name, body string }{
		{"10,000 nested arrays", nested(10_000, "")},
		{"100,000 nested arrays", nested(100_000, "")},
		{"500,000 nested arrays", nested(500_000, "")},
		{"10,000 nested objects", strings.Repeat(`{"a":`, 10_000) + "1" + strings.Repeat("}", 10_000)},
		{"deep array in name", `{"name":` + nested(9_990, "") + `}`},
		{"deep object in items", `{"items":[` + strings.Repeat(`{"id":`, 9_990) + `1` + strings.Repeat("}", 9_990) + `]}`},
		{"10,000 items", `{"name":"N","currency":"gbp","total_price":1,"items":` + repeatJSON(10_000, `{"id":"a","name":"A","price":1}`) + `}`},
		{"10,000 event types", `{"url":"https://hooks.example.com/h","event_types":` + distinctStrings(10_000) + `}`},
		{"100,000 numbers", repeatJSON(100_000, "1")},
		{"1,000 properties", manyProperties(1_000)},
		{"a 900 KiB string", `{"name":"` + strings.Repeat("x", 900<<10) + `"}`},
		{"a 900 KiB number", `{"total_price":` + strings.Repeat("9", 900<<10) + `}`},
	}
	eachOperation(t, e, true, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		for _, b := range bodies {
			start := time.Now()
			r := e.send(op.Method, requestPath(e.t, op, row, w), strings.NewReader(b.body),
				"Content-Type", row.contentType(), "Authorization", "Bearer "+w.tokens[c])
			took := time.Since(start)
			if r.Status < 400 || r.Status >= 500 {
				e.t.Errorf("%s: status %d, want a 4xx: %.300s", b.name, r.Status, r.Body)
			}
			// Generous for the race detector and a busy machine.
			if took > 10*time.Second {
				e.t.Errorf("%s: took %v", b.name, took)
			}
		}
	})
}

// TestDeepJSONAnswerIsAProblem: a body of 10,000 nested arrays is within
// encoding/json's nesting limit, so it is parsed and refused with 422. A
// problem that echoed the body in errors[].value could not be encoded
// (the encoder has the same depth limit), and the client would get
// "error marshaling response" as text/plain instead of RFC 9457.
func TestDeepJSONAnswerIsAProblem(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	for _, body := range []string{nested(10_000, ""), `{"name":"N","items":[` + nested(9_990, "") + `]}`} {
		r := e.do(http.MethodPost, "/v1/deals", seller, body)
		if r.Status < 400 || r.Status >= 500 {
			t.Fatalf("status %d", r.Status)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") || !json.Valid(r.Body) {
			t.Errorf("a %d answer of %q, %d bytes: %.100q; want an application/problem+json body", r.Status, ct, len(r.Body), r.Body)
		}
	}
}

// TestValidationAnswerIsBounded: huma lists every validation error, each
// with the value it is about, and for some errors that value is the whole
// enclosing object or array, so without bounds the answer grows with the
// square of the input, and a body well under the 1 MiB limit can exhaust
// the process's memory:
//   - each unknown property is an error carrying the whole object;
//   - each repeated event type is an error carrying the whole array;
//   - every item of an over-long array is validated and reported.
//
// Any authenticated caller can send these to any operation with a body.
// The sizes here stay harmless should the bounds ever be lost.
func TestValidationAnswerIsBounded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	_, buyer := e.buyer()
	for _, tc := range []struct {
		name, token, path, body string
	}{
		{"2,000 unknown properties", seller, "/v1/deals", manyProperties(2_000)},
		{"1,000 repeated event types", buyer, endpointsPath,
			`{"url":"https://hooks.example.com/h","event_types":` + repeatJSON(1_000, `"deal.created"`) + `}`},
		{"100,000 empty items", seller, "/v1/deals",
			`{"name":"N","currency":"gbp","total_price":1,"items":` + repeatJSON(100_000, "{}") + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			start := time.Now()
			r := e.do(http.MethodPost, tc.path, tc.token, tc.body)
			took := time.Since(start)
			if r.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d", r.Status)
			}
			if len(r.Body) > 256<<10 {
				t.Errorf("a %d-byte request got a %d-byte answer (×%d) in %v; want at most 256 KiB",
					len(tc.body), len(r.Body), len(r.Body)/len(tc.body), took)
			}
		})
	}
}

// jsonPath addresses a value inside a JSON document: string keys and int indices.
type jsonPath []any

func (p jsonPath) location() string {
	var b strings.Builder
	b.WriteString("body")
	for _, s := range p {
		if i, ok := s.(int); ok {
			fmt.Fprintf(&b, "[%d]", i)
		} else {
			b.WriteString("." + s.(string))
		}
	}
	return b.String()
}

// walk lists the path of every value below the root of v.
func walk(v any, at jsonPath, out *[]jsonPath) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := append(append(jsonPath{}, at...), k)
			*out = append(*out, p)
			walk(c, p, out)
		}
	case []any:
		for i, c := range x {
			p := append(append(jsonPath{}, at...), i)
			*out = append(*out, p)
			walk(c, p, out)
		}
	}
}

// replaced is a deep copy of doc with the value at p set to nv.
func replaced(t testing.TB, doc any, p jsonPath, nv any) any {
	t.Helper()
	var c any
	if err := json.Unmarshal(marshalBody(t, doc), &c); err != nil {
		t.Fatal(err)
	}
	cur := c
	for i, s := range p {
		last := i == len(p)-1
		switch x := cur.(type) {
		case map[string]any:
			if last {
				x[s.(string)] = nv
			}
			cur = x[s.(string)]
		case []any:
			if last {
				x[s.(int)] = nv
			}
			cur = x[s.(int)]
		}
	}
	return c
}

func jsonKind(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// fullBodies are valid bodies of the write operations with every field set.
var fullBodies = map[string]func(*world) any{
	"create-seller": func(*world) any { return map[string]any{"name": "N"} },
	"create-buyer":  func(*world) any { return map[string]any{"name": "N"} },
	"create-deal": func(*world) any {
		return dealWith(dealDraft(100, 50), "discount", map[string]any{"type": "flat", "amount": 10}, "status", "available")
	},
	"update-deal": func(*world) any {
		return map[string]any{"name": "N2", "total_price": 100, "currency": "eur", "status": "sold",
			"discount": map[string]any{"type": "percentage", "amount": 5},
			"items":    []any{map[string]any{"id": "a", "name": "A", "price": 100}}}
	},
	"create-webhook-endpoint": func(*world) any {
		return map[string]any{"url": "https://hooks.example.com/full", "event_types": []any{"invoice.issued"}, "description": "d"}
	},
	"update-webhook-endpoint": func(*world) any {
		return map[string]any{"url": "https://hooks.example.com/full", "event_types": []any{"invoice.paid"}, "description": "d", "enabled": true}
	},
	"pay-invoice": func(w *world) any { return map[string]any{"amount": w.invoice.Total, "reference": "r"} },
	"create-auction": func(*world) any {
		return map[string]any{"start_price": 1000, "min_increment": 100, "reserve_price": 5000, "extend_seconds": 60,
			"opens_at":  time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano),
			"closes_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)}
	},
	"place-bid": func(w *world) any { return map[string]any{"amount": w.auction.StartPrice} },
}

// TestWrongTypesAreRefused replaces every value of a full, valid body of
// every operation that takes one with values of every other JSON type:
// each is a 422 naming that value (or the object holding it), never a
// success and never a 5xx.
func TestWrongTypesAreRefused(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	others := []any{float64(7), "text", true, []any{}, map[string]any{}}
	eachOperation(t, e, true, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		full, ok := fullBodies[op.ID]
		if !ok {
			e.t.Fatalf("no full body for %s: add one to fullBodies", op.ID)
		}
		var doc any
		if err := json.Unmarshal(marshalBody(e.t, full(w)), &doc); err != nil {
			e.t.Fatal(err)
		}
		path := requestPath(e.t, op, row, w)
		headers := append([]string{"Content-Type", row.contentType()}, row.header...)
		// The body as it is must succeed, or the refusals prove nothing.
		e.do(op.Method, path, w.tokens[c], doc, headers...).want(row.want[c])

		var paths []jsonPath
		walk(doc, nil, &paths)
		for _, p := range paths {
			var before any = doc
			for _, s := range p {
				switch x := before.(type) {
				case map[string]any:
					before = x[s.(string)]
				case []any:
					before = x[s.(int)]
				}
			}
			for _, nv := range others {
				if jsonKind(nv) == jsonKind(before) {
					continue
				}
				r := e.try(op.Method, path, w.tokens[c], replaced(e.t, doc, p, nv), headers...)
				if r == nil {
					continue
				}
				if r.Status != http.StatusUnprocessableEntity {
					e.t.Errorf("%s = %s: status %d, want 422: %.300s", p.location(), marshalBody(e.t, nv), r.Status, r.Body)
					continue
				}
				named := false
				for _, loc := range r.problem().locations() {
					named = named || strings.HasPrefix(p.location(), loc) && loc != "body" || loc == p.location()
				}
				if !named {
					e.t.Errorf("%s = %s: errors %v do not name it", p.location(), marshalBody(e.t, nv), r.problem().locations())
				}
			}
		}
		// And the body itself of another type.
		for _, nv := range []string{`7`, `"text"`, `true`, `[]`, `null`} {
			if r := e.try(op.Method, path, w.tokens[c], nv, headers...); r != nil && r.Status < 400 {
				e.t.Errorf("body %s: status %d", nv, r.Status)
			}
		}
	})
}

// sqlMetacharacters are strings a query built by concatenation would run.
var sqlMetacharacters = []string{
	`'; DROP TABLE sellers; --`,
	`' OR '1'='1`,
	`" OR ""="`,
	`'); DELETE FROM deals WHERE (''='`,
	`\'; SELECT pg_sleep(10); --`,
	`1; TRUNCATE grants CASCADE`,
	`' UNION SELECT secret::text FROM webhook_endpoints --`,
	`$1 $2 $$ $tag$ %s %d %_ \\ ::uuid ::text`,
	`/* comment */ -- line`,
	`E'\x27' || chr(39)`,
}

// TestSQLMetacharactersEverywhere puts SQL metacharacters in every string
// a write operation stores (stored and returned verbatim), in headers,
// queries and paths (refused or matching nothing), and finally checks the
// targets are all still there.
func TestSQLMetacharactersEverywhere(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	w := newWorld(e)
	ops, owner, buyer := w.tokens[operator], w.tokens[ownerSeller], w.tokens[grantedBuyer]
	for i, s := range sqlMetacharacters {
		// Account names.
		for _, kind := range []string{"sellers", "buyers"} {
			var a api.Account
			e.do(http.MethodPost, "/v1/"+kind, ops, map[string]any{"name": s}).want(http.StatusCreated).decode(&a)
			var got api.Account
			e.do(http.MethodGet, "/v1/"+kind+"/"+a.ID, ops, nil).want(http.StatusOK).decode(&got)
			if got.Name != s {
				t.Errorf("%s name %q came back as %q", kind, s, got.Name)
			}
		}

		// A deal patched with them (creation is TestCreateDealStoresTextVerbatim).
		items := []map[string]any{{"id": s, "name": s, "price": 600}, {"id": fmt.Sprint(i), "name": s + "!", "price": 400}}
		r := e.do(http.MethodPatch, "/v1/deals/"+w.deal.ID, owner, map[string]any{"name": s, "items": items}, "Content-Type", mergePatch)
		r.want(http.StatusOK)
		for _, tok := range []string{owner, buyer} {
			var d deal.Deal
			e.do(http.MethodGet, "/v1/deals/"+w.deal.ID, tok, nil).want(http.StatusOK).decode(&d)
			if d.Name != s || d.Items[0].ID != s || d.Items[0].Name != s || d.Items[1].Name != s+"!" {
				t.Errorf("patched text %q came back as %q / %q / %q", s, d.Name, d.Items[0].ID, d.Items[0].Name)
			}
		}
		expectProblem(e.do(http.MethodPatch, "/v1/deals/"+w.deal.ID, owner, map[string]any{"currency": s}, "Content-Type", mergePatch),
			http.StatusUnprocessableEntity, "body.currency")

		// Endpoint descriptions and URLs: stored verbatim, or the URL refused.
		u := "https://hooks.example.com/" + s + "?q=" + s
		var ep api.EndpointWithSecret
		r = e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": u, "description": s})
		switch r.Status {
		case http.StatusCreated:
			r.decode(&ep)
		case http.StatusUnprocessableEntity:
			expectProblem(r, http.StatusUnprocessableEntity, "body.url")
			e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": "https://hooks.example.com/x", "description": s}).
				want(http.StatusCreated).decode(&ep)
			u = "https://hooks.example.com/x"
		default:
			t.Fatalf("endpoint with URL %q: status %d: %s", u, r.Status, r.Body)
		}
		var got api.Endpoint
		e.do(http.MethodGet, endpointPath(ep.ID), buyer, nil).want(http.StatusOK).decode(&got)
		if got.URL != u || got.Description != s {
			t.Errorf("endpoint url %q, description %q came back as %q, %q", u, s, got.URL, got.Description)
		}
		e.do(http.MethodPatch, endpointPath(ep.ID), buyer, map[string]any{"description": s + s}).want(http.StatusOK).decode(&got)
		if got.Description != s+s {
			t.Errorf("patched description %q came back as %q", s+s, got.Description)
		}
		expectProblem(e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": "https://hooks.example.com/x", "event_types": []string{s}}),
			http.StatusUnprocessableEntity, "")

		// Headers: an Idempotency-Key is a stored key like any other; If-Match names no version.
		var first, again deal.Deal
		e.do(http.MethodPost, "/v1/deals", owner, dealDraft(5), "Idempotency-Key", s).want(http.StatusCreated).decode(&first)
		r = e.do(http.MethodPost, "/v1/deals", owner, dealDraft(5), "Idempotency-Key", s)
		r.decode(&again)
		if r.Status >= 300 || again.ID != first.ID || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("Idempotency-Key %q: the repeat got %d, deal %s (first %s)", s, r.Status, again.ID, first.ID)
		}
		expectProblem(e.do(http.MethodPatch, "/v1/deals/"+w.deal.ID, owner, map[string]any{"name": "x"}, "Content-Type", mergePatch, "If-Match", s),
			http.StatusPreconditionFailed, "")

		// Queries and paths match nothing or are refused.
		q := url.QueryEscape(s)
		var page deliveryPage
		e.do(http.MethodGet, deliveriesPath+"?event_id="+q, buyer, nil).want(http.StatusOK).decode(&page)
		if len(page.Data) != 0 {
			t.Errorf("event_id=%q matched %d deliveries", s, len(page.Data))
		}
		expectProblem(e.do(http.MethodGet, "/v1/events?after="+q, buyer, nil), http.StatusUnprocessableEntity, "query.after")
		for _, query := range []string{"cursor=", "seller=", "status="} {
			expectProblem(e.do(http.MethodGet, "/v1/deals?"+query+q, owner, nil), http.StatusUnprocessableEntity, "")
			expectProblem(e.do(http.MethodGet, "/v1/deals?"+query+q, buyer, nil), http.StatusUnprocessableEntity, "")
		}
		for _, p := range []string{"/v1/deals/", "/v1/sellers/", endpointsPath + "/"} {
			if r := e.do(http.MethodGet, p+url.PathEscape(s), owner, nil); r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusNotFound {
				t.Errorf("GET %s%q: status %d", p, s, r.Status)
			}
		}
	}

	// Everything the world held is still there.
	e.do(http.MethodGet, "/v1/deals/"+w.deal.ID, buyer, nil).want(http.StatusOK)
	e.do(http.MethodGet, endpointPath(w.endpoint.ID), buyer, nil).want(http.StatusOK)
	if got := e.listAll("/v1/sellers/"+w.ids[ownerSeller]+"/buyers", owner, 100); len(got) != 1 || got[0] != w.ids[grantedBuyer] {
		t.Errorf("the owner's grants are %v, want only %s", got, w.ids[grantedBuyer])
	}
	var n int
	if err := testDB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE id = $1`, w.delivery).Scan(&n); err != nil || n != 1 {
		t.Errorf("the delivery row: %d, %v", n, err)
	}
}

// TestNULAndControlBytesInHeaders sends NUL and invalid UTF-8 in every
// header the API reads, and in one it ignores, to every operation.
func TestNULAndControlBytesInHeaders(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	eachOperation(t, e, false, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		path := requestPath(e.t, op, row, w)
		var body any
		if row.body != nil {
			body = row.body(w)
		}
		tok := w.tokens[c]
		for _, auth := range []string{"Bearer " + tok + "\x00", "Bearer \x00" + tok, "\x00", "Bearer \xff\xfe", "Bearer\x00" + tok} {
			e.do(op.Method, path, "", body, append(append([]string{}, row.header...), "Authorization", auth)...).unauthorized()
		}
		for _, h := range [][]string{{"X-Request-Id", "\x00\xff"}, {"Accept", "application/json\x00"}, {"Accept-Encoding", "\x00"}} {
			if r := e.do(op.Method, path, tok, body, append(append([]string{}, row.header...), h...)...); r.Status >= 500 {
				e.t.Errorf("%s %q: status %d", h[0], h[1], r.Status)
			}
		}
		if op.Body {
			expectProblem(e.do(op.Method, path, tok, body, "Content-Type", "application/json\x00"), http.StatusUnsupportedMediaType, "")
		}
		if op.ID == "update-deal" {
			expectProblem(e.do(op.Method, path, tok, body, append(append([]string{}, row.header...), "If-Match", "\"1\x00\"")...), http.StatusPreconditionFailed, "")
		}
	})
}

// TestInvalidUTF8TextIsRefused: JSON text must be UTF-8 (RFC 8259 §8.1),
// so a body that is not is malformed: 400, before the JSON decoder could
// replace each bad byte with U+FFFD and store text the client never sent.
func TestInvalidUTF8TextIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	_, buyer := e.buyer()
	for _, tc := range []struct {
		path, token, body, location string
	}{
		{"/v1/sellers", e.operator(), "{\"name\":\"Acme \xff\xfe\"}", "body.name"},
		{"/v1/deals", seller, "{\"name\":\"D\xc3\",\"currency\":\"gbp\",\"total_price\":1,\"items\":[{\"id\":\"a\",\"name\":\"A\",\"price\":1}]}", "body.name"},
		{endpointsPath, buyer, "{\"url\":\"https://hooks.example.com/h\",\"description\":\"\xed\xa0\x80\"}", "body.description"},
	} {
		r := e.do(http.MethodPost, tc.path, tc.token, tc.body)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "not valid UTF-8") {
			t.Errorf("POST %s with invalid UTF-8 in %s: status %d, want 400 saying so: %s", tc.path, tc.location, r.Status, r.Body)
		}
	}
}

// brokenBody is a request body whose connection fails part way.
type brokenBody struct{ r io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("read tcp 192.0.2.1:8080->192.0.2.2:50000: read: connection reset by peer")
	}
	return n, err
}

// TestAbortedBodyIsNotAServerError: a client that goes away while sending
// its body gets 500 "cannot read request body" with the read error's text;
// any client can so put 5xx answers in the service's logs and metrics at
// will. It is the client's failure: a 4xx (400, or 408 as for a body that
// arrives too slowly), and no internal error text.
func TestAbortedBodyIsNotAServerError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	r := e.send(http.MethodPost, "/v1/deals", &brokenBody{strings.NewReader(`{"name":"half a deal`)},
		"Content-Type", "application/json", "Authorization", "Bearer "+seller)
	if r.Status >= 500 || strings.Contains(string(r.Body), "192.0.2") {
		t.Errorf("status %d: %s", r.Status, r.Body)
	}
}

// TestPatchMemberNamesAreExact: JSON member names are case-sensitive, and
// a merge patch (RFC 7396) sets exactly the members it names. Both huma's
// schema check and encoding/json match member names without regard to
// case, so {"NAME": "x"} renames a deal; but deal.Patch looks for null
// members by their exact name only, so {"NAME": null} is taken as an
// empty patch (200) where {"name": null} is refused (422), and
// {"name": "x", "NAME": null} silently drops the new name.
func TestPatchMemberNamesAreExact(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	for _, body := range []string{`{"NAME":null}`, `{"Items":null}`, `{"name":"Renamed","NAME":null}`} {
		if r := c.patch(d.ID, body); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("PATCH %s: status %d, want 422: %.200s", body, r.Status, r.Body)
		}
	}
}

// goNames are what encoding/json's own messages say, which no problem may:
// they describe the server's code, not the request.
var goNames = []string{"Go struct", "Go value", "int64", "int32", "uint", "float64", "plain.", "string into",
	"map[", "[]", "struct", "json:", "unmarshal", "\x00"}

// checkExplained fails unless r is a 400 or 422 problem in the client's
// terms, each echoed value no longer than the cap; lenient also allows
// the operation's own success (a value some field does accept).
func checkExplained(t testing.TB, what string, r *response, lenient bool) {
	t.Helper()
	if r == nil || lenient && r.Status < 300 {
		return
	}
	if r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
		t.Errorf("%s: status %d, want 400 or 422: %.300s", what, r.Status, r.Body)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("%s: content type %q", what, ct)
		return
	}
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Errorf("%s: %v: %.300s", what, err, r.Body)
		return
	}
	texts := []string{p.Detail}
	for _, e := range p.Errors {
		texts = append(texts, e.Message)
		var s string
		if json.Unmarshal(e.Value, &s) != nil {
			s = string(e.Value) // a number's literal, or nothing
		}
		if len(s) > api.MaxEchoedText {
			t.Errorf("%s: %s echoes %d bytes, more than %d", what, e.Location, len(s), api.MaxEchoedText)
		}
	}
	for _, text := range texts {
		for _, g := range goNames {
			if strings.Contains(text, g) {
				t.Errorf("%s: %q says %q", what, text, g)
			}
		}
	}
}

// TestMalformedBodiesAreExplained sends every operation that takes a body
// its full, valid body spoilt in every way a client's code could spoil it:
// each number as 1e3, 1.5, a string and a huge literal, each string huge,
// each object and array as the other, nested values wrong, invalid UTF-8,
// truncated. Each answer is a 400 or 422 that names no Go type and echoes
// at most a short offending value (or, for 1e3 and 1.5 where a field takes
// them, a success).
func TestMalformedBodiesAreExplained(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	hugeNumber := json.RawMessage(strings.Repeat("9", 300<<10))
	hugeString := strings.Repeat("x", 300<<10)
	eachOperation(t, e, true, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		var doc any
		if err := json.Unmarshal(marshalBody(e.t, fullBodies[op.ID](w)), &doc); err != nil {
			e.t.Fatal(err)
		}
		path := requestPath(e.t, op, row, w)
		headers := append([]string{"Content-Type", row.contentType()}, row.header...)
		send := func(what string, body any, lenient bool) {
			checkExplained(e.t, what, e.try(op.Method, path, w.tokens[c], body, headers...), lenient)
		}
		var paths []jsonPath
		walk(doc, nil, &paths)
		for _, p := range paths {
			var at any = doc
			for _, s := range p {
				switch x := at.(type) {
				case map[string]any:
					at = x[s.(string)]
				case []any:
					at = x[s.(int)]
				}
			}
			var spoilt []any
			lenient := false
			switch at.(type) {
			case float64:
				spoilt = []any{json.RawMessage("1e3"), json.RawMessage("1.5"), json.RawMessage("-0.0"), json.RawMessage("1E+2")}
				lenient = true // discount.amount takes decimals; name may be a number nowhere
			case string:
				spoilt = []any{hugeString, json.RawMessage(`"\ud800"`)}
			case map[string]any:
				spoilt = []any{[]any{at}, "{}"}
			case []any:
				spoilt = []any{map[string]any{"0": at}, "[]", []any{[]any{}}, []any{"item"}}
			}
			for i, nv := range spoilt {
				send(fmt.Sprintf("%s = variant %d", p.location(), i), replaced(e.t, doc, p, nv), lenient && i < 4)
			}
			if _, ok := at.(float64); ok {
				for _, nv := range []any{"1000", hugeNumber, json.RawMessage("1e400"), json.RawMessage("-1e3"), true} {
					send(fmt.Sprintf("%s = %.20s", p.location(), marshalBody(e.t, nv)), replaced(e.t, doc, p, nv), false)
				}
			}
		}
		full := marshalBody(e.t, doc)
		for _, b := range []struct {
			what string
			body string
		}{
			{"truncated", string(full[:len(full)/2])},
			{"truncated after a name", `{"name"`},
			{"one byte", `{`},
			{"invalid UTF-8 in a name", "{\"\xff\":1}"},
			{"invalid UTF-8 after the body", string(full) + "\xc3"},
			{"two bodies", string(full) + string(full)},
			{"an array", `[` + string(full) + `]`},
			{"a string", `"` + strings.Repeat("y", 1000) + `"`},
			{"a trailing comma", strings.TrimSuffix(string(full), "}") + `,}`},
			{"single quotes", `{'name':'N'}`},
			{"a comment", `{/* c */}`},
			{"NaN", `{"amount":NaN}`},
		} {
			send(b.what, b.body, false)
		}
	})
}

// TestDecodeErrorsNameTheMember: a value the schema allows but Go's
// decoder refuses (1e3 for an integer) is a 422 at that member, saying
// what it must be and echoing only that value; malformed JSON is a 400
// at the body that echoes nothing.
func TestDecodeErrorsNameTheMember(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	for _, tc := range []struct {
		method, path, body  string
		status              int
		location, msg, echo string
	}{
		{http.MethodPost, "/v1/deals", `{"name":"N","currency":"gbp","total_price":1e3,"items":[{"id":"a","name":"A","price":1000}]}`,
			422, "body.total_price", "total_price must be an integer (minor units)", "1e3"},
		{http.MethodPost, "/v1/deals", `{"name":"N","currency":"gbp","total_price":1000,"items":[{"id":"a","name":"A","price":10E2}]}`,
			422, "body.items[0].price", "items[0].price must be an integer (minor units)", "10E2"},
		{http.MethodPatch, "/v1/deals/" + d.ID, `{"total_price":1e3}`,
			422, "body.total_price", "total_price must be an integer (minor units)", "1e3"},
		{http.MethodPost, "/v1/deals", `{"name":"N","currency":"gbp","total_price":1e400}`,
			400, "body.total_price", "total_price is a number too large to represent", "1e400"},
		{http.MethodPost, "/v1/deals", `{"name":"N","currency":"gbp","total_price":1000,"items":[`,
			400, "body", "the request body is not valid JSON: it ends before the JSON value does", ""},
		{http.MethodPost, "/v1/deals", `{"name":"N" "currency":"gbp"}`,
			400, "body", "the request body is not valid JSON: invalid character", ""},
		{http.MethodPost, "/v1/deals", `{"name":"\ud800","currency":"gbp","total_price":1000,"items":[{"id":"a","name":"A","price":1000}]}`,
			400, "body", "the request body has a \\u escape of an unpaired UTF-16 surrogate", ""},
	} {
		var headers []string
		if tc.method == http.MethodPatch {
			headers = []string{"Content-Type", mergePatch}
		}
		r := e.do(tc.method, tc.path, seller, tc.body, headers...)
		p := expectProblem(r, tc.status, tc.location)
		if len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Message, tc.msg) || string(p.Errors[0].Value) != tc.echo {
			t.Errorf("%s: %s, want one error saying %q with value %q", tc.body, r.Body, tc.msg, tc.echo)
		}
	}
}

// FuzzDealBody sends arbitrary bodies to create-deal and update-deal:
// each is a success or a 400 or 422 in the client's terms, never a 5xx.
// Without -fuzz it runs the seeds.
func FuzzDealBody(f *testing.F) {
	e := setup(f)
	_, seller := e.seller()
	d := dealClient{e, seller}.create(dealDraft(100))
	for _, s := range []string{
		string(marshalBody(f, dealDraft(100, 50))),
		`{"name":"N","currency":"gbp","total_price":1e3,"items":[{"id":"a","name":"A","price":1000}]}`,
		`{"total_price":1.5}`, `{"total_price":"100"}`, `{"items":{"id":"a"}}`, `{"items":[{"price":[]}]}`,
		`{"discount":{"type":"flat","amount":"5"}}`, `{"discount":[]}`, `{"name":"\ud800"}`, "{\"name\":\"\xff\"}",
		`{"name":"N"`, `[`, `{"total_price":1e400}`, `{"total_price":99999999999999999999}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := e.in(t)
		checkExplained(t, "POST "+string(body), e.do(http.MethodPost, "/v1/deals", seller, body), true)
		checkExplained(t, "PATCH "+string(body), e.do(http.MethodPatch, "/v1/deals/"+d.ID, seller, body, "Content-Type", mergePatch), true)
	})
}
