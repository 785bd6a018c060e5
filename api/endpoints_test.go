package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/webhook"
)

const endpointsPath = "/v1/webhook-endpoints"

// endpointKeys are the fields of an endpoint as GET returns it; create and
// rotation add "secret".
var endpointKeys = []string{"created_at", "description", "disabled_reason", "enabled", "event_types", "id", "updated_at", "url"}

func endpointPath(id string) string { return endpointsPath + "/" + id }

// endpointClient drives one buyer's webhook endpoints.
type endpointClient struct {
	e     *env
	token string
}

// create registers an endpoint and checks the answer is a 201 with a secret.
func (c endpointClient) create(body map[string]any) api.EndpointWithSecret {
	c.e.t.Helper()
	r := c.e.do(http.MethodPost, endpointsPath, c.token, body).want(http.StatusCreated)
	var ep api.EndpointWithSecret
	r.decode(&ep)
	wantSecret(c.e.t, ep.Secret)
	return ep
}

// createURL registers an endpoint for url with the defaults.
func (c endpointClient) createURL(u string) api.EndpointWithSecret {
	c.e.t.Helper()
	return c.create(map[string]any{"url": u})
}

// get reads one endpoint, checking the body carries no secret.
func (c endpointClient) get(id string) api.Endpoint {
	c.e.t.Helper()
	r := c.e.do(http.MethodGet, endpointPath(id), c.token, nil).want(http.StatusOK)
	wantKeys(c.e.t, r.Body, endpointKeys)
	var ep api.Endpoint
	r.decode(&ep)
	return ep
}

// patch changes an endpoint and returns the answer.
func (c endpointClient) patch(id string, body any) api.Endpoint {
	c.e.t.Helper()
	r := c.e.do(http.MethodPatch, endpointPath(id), c.token, body).want(http.StatusOK)
	wantKeys(c.e.t, r.Body, endpointKeys)
	var ep api.Endpoint
	r.decode(&ep)
	return ep
}

// endpointPage is a page of the endpoint list, kept raw so tests can look
// for keys that must not be there.
type endpointPage struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor *string           `json:"next_cursor"`
}

// list reads one page of the endpoint list.
func (c endpointClient) list(query string) endpointPage {
	c.e.t.Helper()
	r := c.e.do(http.MethodGet, endpointsPath+"?"+query, c.token, nil).want(http.StatusOK)
	var p endpointPage
	r.decode(&p)
	if p.Data == nil {
		c.e.t.Fatalf("list has no data array: %s", r.Body)
	}
	return p
}

// listAll follows next_cursor to the end and returns the endpoints in order.
func (c endpointClient) listAll(limit int) []api.Endpoint {
	c.e.t.Helper()
	var out []api.Endpoint
	cursor := ""
	for range 100 {
		p := c.list(fmt.Sprintf("limit=%d&cursor=%s", limit, url.QueryEscape(cursor)))
		if len(p.Data) > limit {
			c.e.t.Fatalf("page of %d endpoints with limit %d", len(p.Data), limit)
		}
		for _, raw := range p.Data {
			wantKeys(c.e.t, raw, endpointKeys)
			var ep api.Endpoint
			if err := json.Unmarshal(raw, &ep); err != nil {
				c.e.t.Fatal(err)
			}
			out = append(out, ep)
		}
		if p.NextCursor == nil {
			return out
		}
		if len(p.Data) != limit {
			c.e.t.Fatalf("short page of %d (limit %d) still has a next_cursor", len(p.Data), limit)
		}
		cursor = *p.NextCursor
	}
	c.e.t.Fatal("endpoint list never ended")
	return nil
}

// wantSecret checks s is "whsec_" + standard base64 of 32 bytes.
func wantSecret(t testing.TB, s string) {
	t.Helper()
	enc, ok := strings.CutPrefix(s, webhook.SecretPrefix)
	if !ok {
		t.Fatalf("secret %q does not start with %s", s, webhook.SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) != 32 {
		t.Fatalf("secret %q is not standard base64 of 32 bytes (%d bytes, %v)", s, len(key), err)
	}
}

// wantKeys checks a JSON object has exactly keys.
func wantKeys(t testing.TB, body []byte, keys []string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v in %s", got, want, body)
	}
}

// wantUTC checks every named timestamp of a JSON object is RFC 3339 in UTC.
func wantUTC(t testing.TB, body []byte, names ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		var s string
		if err := json.Unmarshal(m[n], &s); err != nil {
			t.Fatalf("%s is %s, not a string", n, m[n])
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !strings.HasSuffix(s, "Z") || ts.Location() != time.UTC {
			t.Fatalf("%s = %q is not an RFC 3339 UTC timestamp (%v)", n, s, err)
		}
	}
}

// endpointRow is what the table holds about an endpoint's secrets.
type endpointRow struct {
	Secret                  []byte
	PreviousSecret          []byte
	PreviousSecretExpiresAt *time.Time
	EventTypes              []string
}

func readEndpointRow(t testing.TB, id string) endpointRow {
	t.Helper()
	var row endpointRow
	err := testDB.Pool.QueryRow(context.Background(), `
		SELECT secret, previous_secret, previous_secret_expires_at, event_types
		FROM webhook_endpoints WHERE id = $1`, id).
		Scan(&row.Secret, &row.PreviousSecret, &row.PreviousSecretExpiresAt, &row.EventTypes)
	if err != nil {
		t.Fatalf("read endpoint %s: %v", id, err)
	}
	return row
}

// wantSealed checks stored bytes reveal nothing of secret: neither its
// text, nor its base64 part, nor the key bytes it encodes.
func wantSealed(t testing.TB, stored []byte, secret string) {
	t.Helper()
	enc := strings.TrimPrefix(secret, webhook.SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	for name, needle := range map[string][]byte{"secret": []byte(secret), "base64 part": []byte(enc), "key bytes": key} {
		if bytes.Contains(stored, needle) {
			t.Errorf("stored secret contains the %s in the clear", name)
		}
	}
	// Sealed form: key version, 12-byte nonce, ciphertext, 16-byte tag.
	if want := 1 + 12 + len(secret) + 16; len(stored) != want || stored[0] != 1 {
		t.Errorf("stored secret is %d bytes starting %d, want %d bytes of a version-1 seal", len(stored), stored[0], want)
	}
}

// between fails unless lo <= ts <= hi, allowing for the microsecond
// precision of the database.
func between(t testing.TB, what string, ts, lo, hi time.Time) {
	t.Helper()
	if ts.Before(lo.Add(-time.Microsecond)) || ts.After(hi.Add(time.Microsecond)) {
		t.Fatalf("%s = %s, want between %s and %s", what, ts, lo, hi)
	}
}

func TestCreateEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	before := time.Now()
	r := e.do(http.MethodPost, endpointsPath, buyer, map[string]any{
		"url": "https://example.com/hook", "description": "orders team",
	}).want(http.StatusCreated)
	after := time.Now()
	wantKeys(t, r.Body, append([]string{"secret"}, endpointKeys...))
	wantUTC(t, r.Body, "created_at", "updated_at")
	var ep api.EndpointWithSecret
	r.decode(&ep)
	if _, err := uuid.Parse(ep.ID); err != nil {
		t.Errorf("id %q is not a UUID", ep.ID)
	}
	if ep.URL != "https://example.com/hook" || ep.Description != "orders team" || !ep.Enabled || ep.DisabledReason != nil {
		t.Errorf("unexpected endpoint %+v", ep.Endpoint)
	}
	if !slices.Equal(ep.EventTypes, buyerEventTypes) {
		t.Errorf("event_types %v, want every type a buyer can receive by default", ep.EventTypes)
	}
	between(t, "created_at", ep.CreatedAt, before, after)
	if !ep.UpdatedAt.Equal(ep.CreatedAt) {
		t.Errorf("updated_at %s differs from created_at %s on create", ep.UpdatedAt, ep.CreatedAt)
	}
	wantSecret(t, ep.Secret)

	// Reading it back, one or as a list, shows the same endpoint and never the secret.
	c := endpointClient{e, buyer}
	got := c.get(ep.ID)
	if got.ID != ep.ID || got.URL != ep.URL || got.Description != ep.Description || !got.Enabled ||
		!slices.Equal(got.EventTypes, ep.EventTypes) || !got.CreatedAt.Equal(ep.CreatedAt) || !got.UpdatedAt.Equal(ep.UpdatedAt) {
		t.Errorf("GET %+v, want %+v", got, ep.Endpoint)
	}
	raw := e.do(http.MethodGet, endpointPath(ep.ID), buyer, nil).want(http.StatusOK).Body
	wantUTC(t, raw, "created_at", "updated_at")
	if bytes.Contains(raw, []byte(ep.Secret)) {
		t.Errorf("GET shows the secret: %s", raw)
	}
	listRaw := e.do(http.MethodGet, endpointsPath, buyer, nil).want(http.StatusOK).Body
	if bytes.Contains(listRaw, []byte(`"secret"`)) || bytes.Contains(listRaw, []byte(ep.Secret)) {
		t.Errorf("list shows a secret: %s", listRaw)
	}
	if all := c.listAll(20); len(all) != 1 || all[0].ID != ep.ID {
		t.Errorf("list %+v, want only %s", all, ep.ID)
	}
}

func TestEndpointSecretIsSealedAtRest(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.createURL("https://example.com/hook")
	row := readEndpointRow(t, ep.ID)
	wantSealed(t, row.Secret, ep.Secret)
	if row.PreviousSecret != nil || row.PreviousSecretExpiresAt != nil {
		t.Errorf("a new endpoint has a previous secret: %+v", row)
	}

	// Two endpoints never share a secret, nor a sealed form.
	other := c.createURL("https://example.com/other")
	if other.Secret == ep.Secret || bytes.Equal(readEndpointRow(t, other.ID).Secret, row.Secret) {
		t.Error("two endpoints got the same secret")
	}

	r := e.do(http.MethodPost, endpointPath(ep.ID)+"/rotate-secret", buyer, nil).want(http.StatusOK)
	var rotated api.EndpointWithSecret
	r.decode(&rotated)
	after := readEndpointRow(t, ep.ID)
	wantSealed(t, after.Secret, rotated.Secret)
	wantSealed(t, after.PreviousSecret, ep.Secret)
}

func TestCreateEndpointEventTypes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	for name, types := range map[string]any{
		"unknown":        []string{"deal.deleted"},
		"unknown second": []string{"deal.created", "deal.sold"},
		"wrong case":     []string{"Deal.Created"},
		"empty":          []string{},
		"duplicates":     []string{"deal.created", "deal.created"},
		"not an array":   "deal.created",
		"numbers":        []int{1},
	} {
		r := e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": "https://example.com/hook", "event_types": types})
		r.want(http.StatusUnprocessableEntity)
		p := r.problem()
		if !slices.ContainsFunc(p.locations(), func(l string) bool { return strings.HasPrefix(l, "body.event_types") }) {
			t.Errorf("%s: locations %v do not name body.event_types", name, p.locations())
		}
	}
	if got := c.listAll(20); len(got) != 0 {
		t.Fatalf("refused creates stored %d endpoints", len(got))
	}
	// null is taken as leaving the field out: every type.
	if ep := c.create(map[string]any{"url": "https://example.com/hook", "event_types": nil}); !slices.Equal(ep.EventTypes, buyerEventTypes) {
		t.Errorf("event_types null gave %v", ep.EventTypes)
	}

	for _, types := range [][]string{{"deal.updated"}, {"deal.created"}, {"deal.updated", "deal.created"}} {
		ep := c.create(map[string]any{"url": "https://example.com/hook", "event_types": types})
		if !slices.Equal(ep.EventTypes, types) {
			t.Errorf("created with %v, answered %v", types, ep.EventTypes)
		}
		if got := c.get(ep.ID).EventTypes; !slices.Equal(got, types) {
			t.Errorf("created with %v, GET shows %v", types, got)
		}
		if got := readEndpointRow(t, ep.ID).EventTypes; !slices.Equal(got, types) {
			t.Errorf("created with %v, stored %v", types, got)
		}
	}
}

// refusedURLs are URLs no endpoint may have in production (and in this
// harness, where AllowPrivateWebhooks is false).
var refusedURLs = map[string]string{
	"plain http":             "http://example.com/hook",
	"loopback":               "https://127.0.0.1/",
	"loopback other":         "https://127.1.2.3/hook",
	"loopback decimal":       "https://2130706433/",
	"loopback hex":           "https://0x7f.1/",
	"private 10":             "https://10.0.0.1/",
	"private 172":            "https://172.16.0.1/",
	"private 192":            "https://192.168.1.1/",
	"cgnat":                  "https://100.64.0.1/",
	"metadata":               "https://169.254.169.254/latest/meta-data/",
	"unspecified":            "https://0.0.0.0/",
	"ipv6 loopback":          "https://[::1]/",
	"ipv6 mapped loopback":   "https://[::ffff:127.0.0.1]/",
	"ipv6 link-local":        "https://[fe80::1]/",
	"ipv6 unique-local":      "https://[fd00::1]/",
	"localhost":              "https://localhost/",
	"localhost upper dot":    "https://LOCALHOST./hook",
	"localhost subdomain":    "https://api.localhost/",
	"credentials":            "https://user:pass@example.com/",
	"user only":              "https://user@example.com/",
	"ftp":                    "ftp://example.com",
	"javascript":             "javascript:alert(1)",
	"not a url":              "not a url",
	"empty":                  "",
	"blank":                  "   ",
	"scheme only":            "https://",
	"no scheme":              "//example.com/hook",
	"relative":               "/hook",
	"fragment":               "https://example.com/hook#x",
	"empty fragment":         "https://example.com/hook#",
	"port out of range":      "https://example.com:65536/",
	"port zero":              "https://example.com:0/",
	"non-ASCII host":         "https://exämple.com/",
	"bad IPv4 with dots":     "https://1.2.3.256/",
	"control character":      "https://example.com/\x7f",
	"NUL":                    "https://example.com/\x00",
	"too long":               "https://example.com/" + strings.Repeat("a", 2048),
	"percent-encoded loopbk": "https://%31%32%37.0.0.1/",
}

// acceptedURLs are public https URLs. CheckURL does no DNS lookup (a name is
// checked only syntactically and against "localhost"; the sender checks the
// resolved address when it dials), so these pass without network access.
var acceptedURLs = []string{
	"https://example.com/hook",
	"https://EXAMPLE.com/Hook?x=1&y=2",
	"https://hooks.example.com:8443/dealcast/v1",
	"https://example.com./trailing-dot",
	"https://xn--exmple-cua.com/",
	"https://1.1.1.1/",
	"https://[2606:4700:4700::1111]/hook",
}

func TestCreateEndpointURLValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	for name, u := range refusedURLs {
		r := e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": u})
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s (%q): status %d, want 422: %s", name, u, r.Status, r.Body)
			continue
		}
		if p := r.problem(); !slices.Contains(p.locations(), "body.url") {
			t.Errorf("%s (%q): locations %v do not name body.url", name, u, p.locations())
		}
	}
	r := e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"description": "no url"}).want(http.StatusUnprocessableEntity)
	if p := r.problem(); !slices.Contains(p.locations(), "body.url") {
		t.Errorf("missing url: locations %v do not name body.url", p.locations())
	}
	if got := c.listAll(20); len(got) != 0 {
		t.Fatalf("refused URLs stored %d endpoints: %+v", len(got), got)
	}
	for _, u := range acceptedURLs {
		if ep := c.createURL(u); ep.URL != u {
			t.Errorf("created with %q, stored %q", u, ep.URL)
		}
	}
}

func TestCreateEndpointDescription(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	if ep := c.createURL("https://example.com/hook"); ep.Description != "" {
		t.Errorf("description %q without one given", ep.Description)
	}
	text := "Ops — «dealcast» 🚀 " + strings.Repeat("x", 480)
	if ep := c.create(map[string]any{"url": "https://example.com/hook", "description": text}); c.get(ep.ID).Description != text {
		t.Errorf("description not stored verbatim")
	}
	for name, body := range map[string]map[string]any{
		"blank":         {"url": "https://example.com/hook", "description": "   "},
		"NUL":           {"url": "https://example.com/hook", "description": "a\x00b"},
		"too long":      {"url": "https://example.com/hook", "description": strings.Repeat("x", 501)},
		"not a string":  {"url": "https://example.com/hook", "description": 5},
		"unknown field": {"url": "https://example.com/hook", "secret": "whsec_mine"},
	} {
		r := e.do(http.MethodPost, endpointsPath, buyer, body)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", name, r.Status, r.Body)
			continue
		}
		r.problem()
	}
	for name, body := range map[string]string{"malformed": `{"url":`, "array": `[]`} {
		r := e.do(http.MethodPost, endpointsPath, buyer, body)
		if r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s body: status %d, want 400 or 422: %s", name, r.Status, r.Body)
		}
	}
}

// endpointCalls are every endpoint operation on id.
func endpointCalls(id string) []struct{ method, path string } {
	return []struct{ method, path string }{
		{http.MethodPost, endpointsPath},
		{http.MethodGet, endpointsPath},
		{http.MethodGet, endpointPath(id)},
		{http.MethodPatch, endpointPath(id)},
		{http.MethodDelete, endpointPath(id)},
		{http.MethodPost, endpointPath(id) + "/rotate-secret"},
	}
}

func TestEndpointRoles(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	_, seller := e.seller()
	ep := endpointClient{e, buyer}.createURL("https://example.com/hook")
	for _, call := range endpointCalls(ep.ID) {
		var body any
		switch call.method {
		case http.MethodPost:
			body = map[string]any{"url": "https://example.com/other"}
		case http.MethodPatch:
			body = map[string]any{"description": "changed"}
		}
		// Sellers have endpoints of their own since trading: a buyer's
		// is not found for them.
		want := http.StatusNotFound
		if call.path == endpointsPath {
			want = http.StatusOK
			if call.method == http.MethodPost {
				want = http.StatusCreated
			}
		}
		e.do(call.method, call.path, seller, body).want(want)
		e.do(call.method, call.path, e.operator(), body).want(http.StatusForbidden).problem()
		r := e.do(call.method, call.path, "", body).want(http.StatusUnauthorized)
		r.problem()
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", call.method, call.path)
		}
		e.do(call.method, call.path, "not-a-jwt", body).want(http.StatusUnauthorized)
	}
	// Nothing the others tried changed the endpoint.
	got := endpointClient{e, buyer}.get(ep.ID)
	if !got.UpdatedAt.Equal(ep.UpdatedAt) || got.Description != "" {
		t.Errorf("endpoint changed by refused calls: %+v", got)
	}
	if row := readEndpointRow(t, ep.ID); row.PreviousSecret != nil {
		t.Error("secret rotated by a refused call")
	}
	if all := (endpointClient{e, buyer}).listAll(20); len(all) != 1 {
		t.Errorf("refused creates stored endpoints: %d", len(all))
	}
}

func TestEndpointOfAnotherBuyer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, owner := e.buyer()
	_, other := e.buyer()
	ep := endpointClient{e, owner}.createURL("https://example.com/hook")
	stored := readEndpointRow(t, ep.ID)
	for _, call := range endpointCalls(ep.ID)[2:] {
		var body any
		if call.method == http.MethodPatch {
			body = map[string]any{"url": "https://attacker.example/", "enabled": false}
		}
		r := e.do(call.method, call.path, other, body).want(http.StatusNotFound)
		r.problem()
		if bytes.Contains(r.Body, []byte("example.com")) {
			t.Errorf("%s %s: 404 reveals the endpoint: %s", call.method, call.path, r.Body)
		}
	}
	// The other buyer lists nothing, and the owner's endpoint is untouched.
	if page := (endpointClient{e, other}).list(""); len(page.Data) != 0 {
		t.Errorf("another buyer lists %d endpoints", len(page.Data))
	}
	got := endpointClient{e, owner}.get(ep.ID)
	if got.URL != ep.URL || !got.Enabled || !got.UpdatedAt.Equal(ep.UpdatedAt) {
		t.Errorf("another buyer changed the endpoint: %+v", got)
	}
	if row := readEndpointRow(t, ep.ID); !bytes.Equal(row.Secret, stored.Secret) || row.PreviousSecret != nil {
		t.Error("another buyer rotated the secret")
	}
}

func TestEndpointIDValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.createURL("https://example.com/hook")
	for _, id := range []string{"not-a-uuid", "123", strings.Repeat("a", 40), "%00"} {
		for _, call := range endpointCalls(id)[2:] {
			var body any
			if call.method == http.MethodPatch {
				body = map[string]any{}
			}
			r := e.do(call.method, call.path, buyer, body)
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s %s: status %d, want 422: %s", call.method, call.path, r.Status, r.Body)
				continue
			}
			if p := r.problem(); !slices.Contains(p.locations(), "path.id") {
				t.Errorf("%s %s: locations %v do not name path.id", call.method, call.path, p.locations())
			}
		}
	}
	for _, call := range endpointCalls(uuid.NewString())[2:] {
		var body any
		if call.method == http.MethodPatch {
			body = map[string]any{}
		}
		e.do(call.method, call.path, buyer, body).want(http.StatusNotFound).problem()
	}
	// Other spellings of the id that the schema allows name the same
	// endpoint; none may make the server fail. (The urn:uuid: form is
	// not a spelling PostgreSQL reads: it is answered 404, as for deals.)
	for _, id := range []string{strings.ToUpper(ep.ID), "{" + ep.ID + "}", strings.ReplaceAll(ep.ID, "-", "")} {
		if got := c.get(id); got.ID != ep.ID {
			t.Errorf("GET %s returned %s", id, got.ID)
		}
	}
	e.do(http.MethodGet, endpointPath("urn:uuid:"+ep.ID), buyer, nil)
}

func TestPatchEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.create(map[string]any{"url": "https://example.com/hook", "description": "first"})
	stored := readEndpointRow(t, ep.ID)
	last := ep.Endpoint

	// step applies a patch and checks the answer, GET and the clock.
	step := func(name string, body map[string]any, want func(*api.Endpoint)) {
		t.Helper()
		got := c.patch(ep.ID, body)
		exp := last
		want(&exp)
		if got.ID != exp.ID || got.URL != exp.URL || got.Description != exp.Description || got.Enabled != exp.Enabled ||
			!slices.Equal(got.EventTypes, exp.EventTypes) || !got.CreatedAt.Equal(ep.CreatedAt) || got.DisabledReason != nil {
			t.Fatalf("%s: answered %+v, want %+v", name, got, exp)
		}
		if !got.UpdatedAt.After(last.UpdatedAt) {
			t.Fatalf("%s: updated_at %s did not advance from %s", name, got.UpdatedAt, last.UpdatedAt)
		}
		if read := c.get(ep.ID); read.URL != got.URL || read.Description != got.Description || read.Enabled != got.Enabled ||
			!slices.Equal(read.EventTypes, got.EventTypes) || !read.UpdatedAt.Equal(got.UpdatedAt) {
			t.Fatalf("%s: GET %+v differs from the answer %+v", name, read, got)
		}
		last = got
	}
	step("url", map[string]any{"url": "https://hooks.example.org/new"}, func(x *api.Endpoint) { x.URL = "https://hooks.example.org/new" })
	step("description", map[string]any{"description": "second"}, func(x *api.Endpoint) { x.Description = "second" })
	step("event types", map[string]any{"event_types": []string{"deal.updated"}}, func(x *api.Endpoint) { x.EventTypes = []string{"deal.updated"} })
	step("disable", map[string]any{"enabled": false}, func(x *api.Endpoint) { x.Enabled = false })
	step("enable", map[string]any{"enabled": true}, func(x *api.Endpoint) { x.Enabled = true })
	step("clear description", map[string]any{"description": ""}, func(x *api.Endpoint) { x.Description = "" })
	step("several", map[string]any{"url": "https://example.net/h", "event_types": []string{"deal.created", "deal.updated"}, "enabled": false},
		func(x *api.Endpoint) {
			x.URL, x.EventTypes, x.Enabled = "https://example.net/h", []string{"deal.created", "deal.updated"}, false
		})
	step("empty patch", map[string]any{}, func(*api.Endpoint) {})

	// A patch never touches the secret.
	if row := readEndpointRow(t, ep.ID); !bytes.Equal(row.Secret, stored.Secret) || row.PreviousSecret != nil {
		t.Error("PATCH changed the stored secret")
	}
}

func TestPatchEndpointValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.create(map[string]any{"url": "https://example.com/hook", "description": "kept"})
	check := func(name string, body map[string]any, location string) {
		t.Helper()
		r := e.do(http.MethodPatch, endpointPath(ep.ID), buyer, body)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", name, r.Status, r.Body)
			return
		}
		p := r.problem()
		if !slices.ContainsFunc(p.locations(), func(l string) bool { return strings.HasPrefix(l, location) }) {
			t.Errorf("%s: locations %v do not name %s", name, p.locations(), location)
		}
	}
	// The URL is checked again, exactly as on create.
	for name, u := range refusedURLs {
		check("url "+name, map[string]any{"url": u}, "body.url")
	}
	check("unknown type", map[string]any{"event_types": []string{"deal.deleted"}}, "body.event_types")
	check("empty types", map[string]any{"event_types": []string{}}, "body.event_types")
	check("duplicate types", map[string]any{"event_types": []string{"deal.updated", "deal.updated"}}, "body.event_types")
	check("blank description", map[string]any{"description": " \t"}, "body.description")
	check("long description", map[string]any{"description": strings.Repeat("d", 501)}, "body.description")
	check("enabled not a bool", map[string]any{"enabled": "yes"}, "body.enabled")
	check("unknown field", map[string]any{"secret": "whsec_x"}, "body")
	check("read-only field", map[string]any{"id": uuid.NewString()}, "body")
	check("bad among good", map[string]any{"description": "changed", "url": "https://10.1.2.3/"}, "body.url")

	// None of it changed the endpoint.
	got := c.get(ep.ID)
	if got.URL != ep.URL || got.Description != "kept" || !slices.Equal(got.EventTypes, ep.EventTypes) ||
		!got.Enabled || !got.UpdatedAt.Equal(ep.UpdatedAt) {
		t.Errorf("refused patches changed the endpoint: %+v", got)
	}
}

// TestPatchEndpointDisabledReason: an endpoint delivery disabled (it
// answered 410 Gone) shows why, keeps the reason through other changes,
// and loses it when the buyer turns it on again.
func TestPatchEndpointDisabledReason(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.createURL("https://example.com/hook")
	const reason = "the endpoint answered 410 Gone"
	if _, err := testDB.Pool.Exec(context.Background(),
		`UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2 WHERE id = $1`, ep.ID, reason); err != nil {
		t.Fatal(err)
	}
	if got := c.get(ep.ID); got.Enabled || got.DisabledReason == nil || *got.DisabledReason != reason {
		t.Fatalf("disabled endpoint reads %+v", got)
	}
	if got := c.patch(ep.ID, map[string]any{"description": "still off"}); got.Enabled || got.DisabledReason == nil || *got.DisabledReason != reason {
		t.Fatalf("after an unrelated change %+v", got)
	}
	if got := c.patch(ep.ID, map[string]any{"enabled": true}); !got.Enabled || got.DisabledReason != nil {
		t.Fatalf("re-enabled endpoint reads %+v", got)
	}
	r := e.do(http.MethodGet, endpointPath(ep.ID), buyer, nil).want(http.StatusOK)
	if !bytes.Contains(r.Body, []byte(`"disabled_reason":null`)) {
		t.Errorf("disabled_reason not null after re-enabling: %s", r.Body)
	}
}

func TestDeleteEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.createURL("https://example.com/hook")
	keep := c.createURL("https://example.com/keep")
	r := e.do(http.MethodDelete, endpointPath(ep.ID), buyer, nil).want(http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("204 with a body: %s", r.Body)
	}
	e.do(http.MethodGet, endpointPath(ep.ID), buyer, nil).want(http.StatusNotFound).problem()
	e.do(http.MethodDelete, endpointPath(ep.ID), buyer, nil).want(http.StatusNotFound).problem()
	e.do(http.MethodPatch, endpointPath(ep.ID), buyer, map[string]any{"enabled": true}).want(http.StatusNotFound)
	e.do(http.MethodPost, endpointPath(ep.ID)+"/rotate-secret", buyer, nil).want(http.StatusNotFound)
	if all := c.listAll(20); len(all) != 1 || all[0].ID != keep.ID {
		t.Errorf("after delete the list is %+v, want only %s", all, keep.ID)
	}
	var n int
	if err := testDB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("deleted endpoint still stored (%d rows, %v)", n, err)
	}
}

func TestRotateEndpointSecret(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	ep := c.create(map[string]any{"url": "https://example.com/hook", "event_types": []string{"deal.created"}, "description": "d"})
	first := readEndpointRow(t, ep.ID)

	rotate := func() (api.EndpointWithSecret, time.Time, time.Time) {
		t.Helper()
		before := time.Now()
		r := e.do(http.MethodPost, endpointPath(ep.ID)+"/rotate-secret", buyer, nil).want(http.StatusOK)
		after := time.Now()
		wantKeys(t, r.Body, append([]string{"secret"}, endpointKeys...))
		var out api.EndpointWithSecret
		r.decode(&out)
		wantSecret(t, out.Secret)
		return out, before, after
	}
	rotated, before, after := rotate()
	if rotated.Secret == ep.Secret {
		t.Fatal("rotation returned the same secret")
	}
	if rotated.ID != ep.ID || rotated.URL != ep.URL || rotated.Description != ep.Description ||
		!slices.Equal(rotated.EventTypes, ep.EventTypes) || !rotated.Enabled || !rotated.CreatedAt.Equal(ep.CreatedAt) {
		t.Errorf("rotation answered %+v, want the endpoint %+v", rotated.Endpoint, ep.Endpoint)
	}
	if !rotated.UpdatedAt.After(ep.UpdatedAt) {
		t.Errorf("updated_at %s did not advance from %s", rotated.UpdatedAt, ep.UpdatedAt)
	}
	row := readEndpointRow(t, ep.ID)
	if !bytes.Equal(row.PreviousSecret, first.Secret) {
		t.Error("previous_secret is not the secret before the rotation")
	}
	if bytes.Equal(row.Secret, first.Secret) {
		t.Error("stored secret unchanged by rotation")
	}
	if row.PreviousSecretExpiresAt == nil {
		t.Fatal("previous_secret_expires_at not set")
	}
	between(t, "previous_secret_expires_at", *row.PreviousSecretExpiresAt, before.Add(api.SecretGrace), after.Add(api.SecretGrace))
	if api.SecretGrace != 24*time.Hour {
		t.Errorf("grace %s, the contract says 24h", api.SecretGrace)
	}

	// GET still shows no secret after a rotation.
	raw := e.do(http.MethodGet, endpointPath(ep.ID), buyer, nil).want(http.StatusOK).Body
	wantKeys(t, raw, endpointKeys)

	// A second rotation keeps the one just replaced as the previous secret.
	again, before, after := rotate()
	if again.Secret == rotated.Secret || again.Secret == ep.Secret {
		t.Fatal("second rotation repeated a secret")
	}
	row2 := readEndpointRow(t, ep.ID)
	if !bytes.Equal(row2.PreviousSecret, row.Secret) {
		t.Error("after two rotations previous_secret is not the second secret")
	}
	between(t, "previous_secret_expires_at", *row2.PreviousSecretExpiresAt, before.Add(api.SecretGrace), after.Add(api.SecretGrace))
}

func TestListEndpointsPagination(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	_, other := e.buyer()
	c := endpointClient{e, buyer}

	// An empty list is an empty array and a null cursor.
	r := e.do(http.MethodGet, endpointsPath, buyer, nil).want(http.StatusOK)
	if got := string(bytes.TrimSpace(r.Body)); got != `{"data":[],"next_cursor":null}` {
		t.Errorf("empty list %s", got)
	}

	var ids []string
	for i := range 5 {
		ids = append(ids, c.createURL(fmt.Sprintf("https://example.com/hook/%d", i)).ID)
	}
	endpointClient{e, other}.createURL("https://example.com/other")
	slices.Sort(ids) // the list is ordered by ID

	for _, limit := range []int{1, 2, 3, 5, 100} {
		var got []string
		for _, ep := range c.listAll(limit) {
			got = append(got, ep.ID)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("limit %d lists %v, want %v", limit, got, ids)
		}
	}
	p := c.list("limit=2")
	if len(p.Data) != 2 || p.NextCursor == nil {
		t.Fatalf("first page of 2: %d items, cursor %v", len(p.Data), p.NextCursor)
	}
	if p := c.list("limit=5"); len(p.Data) != 5 || p.NextCursor != nil {
		t.Errorf("a page holding the whole list has next_cursor %v", p.NextCursor)
	}

	// A page is stable under inserts: an endpoint created after the
	// cursor was issued appears once, or not at all, never twice.
	p1 := c.list("limit=3")
	c.createURL("https://example.com/late")
	p2 := c.list("limit=100&cursor=" + url.QueryEscape(*p1.NextCursor))
	seen := map[string]int{}
	for _, raw := range append(p1.Data, p2.Data...) {
		var ep api.Endpoint
		if err := json.Unmarshal(raw, &ep); err != nil {
			t.Fatal(err)
		}
		seen[ep.ID]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("endpoint %s listed %d times", id, n)
		}
	}
	if len(seen) < 5 {
		t.Errorf("paging across an insert lost endpoints: %d seen", len(seen))
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=x", "cursor=garbage", "cursor=" + strings.Repeat("A", 600)} {
		r := e.do(http.MethodGet, endpointsPath+"?"+q, buyer, nil)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("?%s: status %d, want 422: %s", q, r.Status, r.Body)
			continue
		}
		name := "query." + strings.SplitN(q, "=", 2)[0]
		if p := r.problem(); !slices.Contains(p.locations(), name) {
			t.Errorf("?%s: locations %v do not name %s", q, p.locations(), name)
		}
	}
}

func TestListEndpointsDefaultLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, buyer := e.buyer()
	c := endpointClient{e, buyer}
	for i := range 21 {
		c.createURL(fmt.Sprintf("https://example.com/%d", i))
	}
	p := c.list("")
	if len(p.Data) != 20 || p.NextCursor == nil {
		t.Fatalf("default page: %d endpoints, cursor %v; want 20 and a cursor", len(p.Data), p.NextCursor)
	}
	if rest := c.list("cursor=" + url.QueryEscape(*p.NextCursor)); len(rest.Data) != 1 || rest.NextCursor != nil {
		t.Fatalf("second page: %d endpoints, cursor %v; want 1 and null", len(rest.Data), rest.NextCursor)
	}
}

// buyerEventTypes are every type a buyer can receive, in the order an
// endpoint lists them by default.
var buyerEventTypes = []string{"deal.created", "deal.updated", "invoice.issued", "invoice.paid", "invoice.voided",
	"invoice.overdue", "auction.created", "auction.updated", "auction.closed", "bid.outbid"}
