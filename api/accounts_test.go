package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
)

// in returns e reporting to t, for subtests: the harness's helpers fail
// the test they were made with.
func (e *env) in(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// unauthorized fails unless r is a 401 problem that names the Bearer scheme.
func (r *response) unauthorized() {
	r.t.Helper()
	r.want(http.StatusUnauthorized)
	if p := r.problem(); p.Status != http.StatusUnauthorized || p.Detail == "" {
		r.t.Fatalf("problem %+v", p)
	}
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		r.t.Fatalf("WWW-Authenticate %q", h)
	}
}

// wantProblem fails unless r has status code and a problem+json body.
func (r *response) wantProblem(code int) problem {
	r.t.Helper()
	r.want(code)
	p := r.problem()
	if p.Status != code {
		r.t.Fatalf("problem status %d in a %d response", p.Status, code)
	}
	return p
}

// signed is an HS256 token over arbitrary claims, with the test secret.
func signed(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUnauthenticatedRequests(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	expired, err := auth.Mint(testSecret, store.RoleOperator, "ops-1", -time.Hour, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, err := auth.Mint("another-secret", store.RoleOperator, "ops-1", time.Hour, auth.MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"role": "operator", "sub": "ops-1", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	noExp := signed(t, jwt.MapClaims{"role": "operator", "sub": "ops-1"})
	notYet := signed(t, jwt.MapClaims{"role": "operator", "sub": "ops-1",
		"nbf": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()})

	for _, tc := range []struct{ name, header string }{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"scheme only", "Bearer"},
		{"basic auth", "Basic b3BzOnNlY3JldA=="},
		{"token without scheme", seller},
		{"garbage", "Bearer garbage"},
		{"truncated", "Bearer " + seller[:len(seller)-5]},
		{"expired", "Bearer " + expired},
		{"not yet valid", "Bearer " + notYet},
		{"without exp", "Bearer " + noExp},
		{"another secret", "Bearer " + otherSecret},
		{"alg none", "Bearer " + none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			var h []string
			if tc.header != "" {
				h = []string{"Authorization", tc.header}
			}
			e.do(http.MethodGet, "/v1/sellers/"+sellerID, "", nil, h...).unauthorized()
			e.do(http.MethodPost, "/v1/sellers", "", map[string]any{"name": "x"}, h...).unauthorized()
			e.do(http.MethodPut, "/v1/sellers/"+sellerID+"/buyers/"+uuid.NewString(), "", nil, h...).unauthorized()
			e.do(http.MethodGet, "/v1/deals", "", nil, h...).unauthorized()
		})
	}
}

func TestTokenForAbsentAccount(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, _ := e.seller()
	buyerID, _ := e.buyer()
	missing := uuid.NewString()
	for _, tc := range []struct {
		name string
		role store.Role
		sub  string
	}{
		{"seller that does not exist", store.RoleSeller, missing},
		{"buyer that does not exist", store.RoleBuyer, missing},
		{"buyer token with a seller's id", store.RoleBuyer, sellerID},
		{"seller token with a buyer's id", store.RoleSeller, buyerID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			tok := e.token(tc.role, tc.sub)
			// Paths the account could reach if it existed: the refusal is
			// authentication's, not a handler's 403 or 404.
			plural := "/v1/sellers/"
			if tc.role == store.RoleBuyer {
				plural = "/v1/buyers/"
			}
			e.do(http.MethodGet, plural+tc.sub, tok, nil).unauthorized()
			e.do(http.MethodGet, "/v1/deals", tok, nil).unauthorized()
		})
	}
	t.Run("the account once created", func(t *testing.T) {
		t.Parallel()
		// A refusal is not remembered: once the account exists, the same
		// token works.
		e := e.in(t)
		id := uuid.NewString()
		tok := e.token(store.RoleSeller, id)
		e.do(http.MethodGet, "/v1/sellers/"+id, tok, nil).unauthorized()
		if _, err := testDB.Pool.Exec(t.Context(), `INSERT INTO sellers (id, name) VALUES ($1, 'Late')`, id); err != nil {
			t.Fatal(err)
		}
		e.do(http.MethodGet, "/v1/sellers/"+id, tok, nil).want(http.StatusOK)
	})
}

// TestTokenWithNonCanonicalSubject: a seller token whose sub spells the
// account id another way ("urn:uuid:<id>", which PostgreSQL's uuid type
// refuses) must not pass auth.Verify only to fail the account lookup with
// 22P02, answered 503. It must be refused (401) or act as that seller.
func TestTokenWithNonCanonicalSubject(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id, _ := e.seller()
	for _, sub := range []string{"urn:uuid:" + id, "{" + id + "}", strings.ToUpper(id)} {
		r := e.doRaw(http.MethodGet, "/v1/sellers/"+id, e.token(store.RoleSeller, sub), nil)
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusOK:
			if a := accountJSON(t, r.Body, "acct seller"); a.ID != id {
				t.Fatalf("sub %q read %s", sub, a.ID)
			}
		default:
			t.Fatalf("sub %q: status %d, want 401 or 200: %s", sub, r.Status, r.Body)
		}
	}
}

// TestBearerSchemeIsCaseInsensitive: HTTP authentication schemes are
// case-insensitive (RFC 9110 §11.1), so "bearer <token>" is accepted.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id, tok := e.seller()
	for _, scheme := range []string{"bearer", "BEARER"} {
		e.do(http.MethodGet, "/v1/sellers/"+id, "", nil, "Authorization", scheme+" "+tok).want(http.StatusOK)
	}
}

// accountJSON checks the wire form of an account: exactly id, name and
// created_at, the id a canonical UUID, the time RFC 3339 in UTC.
func accountJSON(t *testing.T, body []byte, name string) api.Account {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 3 || raw["id"] == nil || raw["name"] == nil || raw["created_at"] == nil {
		t.Fatalf("account fields: %s", body)
	}
	var a struct {
		ID, Name, CreatedAt string
	}
	_ = json.Unmarshal(raw["id"], &a.ID)
	_ = json.Unmarshal(raw["name"], &a.Name)
	_ = json.Unmarshal(raw["created_at"], &a.CreatedAt)
	if u, err := uuid.Parse(a.ID); err != nil || u.String() != a.ID {
		t.Fatalf("id %q is not a canonical UUID", a.ID)
	}
	if a.Name != name {
		t.Fatalf("name %q, want %q", a.Name, name)
	}
	at, err := time.Parse(time.RFC3339Nano, a.CreatedAt)
	if err != nil || !strings.HasSuffix(a.CreatedAt, "Z") {
		t.Fatalf("created_at %q is not RFC 3339 UTC: %v", a.CreatedAt, err)
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Fatalf("created_at %v is not now", at)
	}
	return api.Account{ID: a.ID, Name: a.Name, CreatedAt: at}
}

func TestCreateAccounts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, kind := range []string{"sellers", "buyers"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			for _, name := range []string{
				"Acme Wholesale",
				"Ünïcödé Trading 株式会社",
				strings.Repeat("é", 200), // 200 characters, 400 bytes
				"a",
			} {
				r := e.do(http.MethodPost, "/v1/"+kind, e.operator(), map[string]any{"name": name}).want(http.StatusCreated)
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("content type %q", ct)
				}
				created := accountJSON(t, r.Body, name)
				got := e.do(http.MethodGet, "/v1/"+kind+"/"+created.ID, e.operator(), nil).want(http.StatusOK)
				read := accountJSON(t, got.Body, name)
				if !read.CreatedAt.Equal(created.CreatedAt) || read.ID != created.ID {
					t.Fatalf("read %+v, created %+v", read, created)
				}
			}
		})
	}
	t.Run("ids are distinct", func(t *testing.T) {
		t.Parallel()
		e := e.in(t)
		seen := map[string]bool{}
		for range 5 {
			id, _ := e.seller()
			bid, _ := e.buyer()
			if seen[id] || seen[bid] {
				t.Fatal("id reused")
			}
			seen[id], seen[bid] = true, true
		}
	})
}

func TestCreateAccountForbidden(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	_, buyer := e.buyer()
	for _, tok := range []string{seller, buyer} {
		for _, path := range []string{"/v1/sellers", "/v1/buyers"} {
			e.do(http.MethodPost, path, tok, map[string]any{"name": "Sneaky"}).wantProblem(http.StatusForbidden)
		}
	}
}

func TestCreateAccountValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{"/v1/sellers", "/v1/buyers"} {
		for _, tc := range []struct {
			name string
			body any
		}{
			{"empty name", map[string]any{"name": ""}},
			{"blank name", map[string]any{"name": " \t\n "}},
			{"name over 200 characters", map[string]any{"name": strings.Repeat("x", 201)}},
			{"name over 200 multibyte characters", map[string]any{"name": strings.Repeat("é", 201)}},
			{"NUL in name", map[string]any{"name": "Acme\x00Ltd"}},
			{"name not a string", map[string]any{"name": 42}},
			{"no name", map[string]any{}},
			{"unknown field", map[string]any{"name": "Acme", "id": uuid.NewString()}},
		} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := e.in(t)
				p := e.do(http.MethodPost, path, e.operator(), tc.body).wantProblem(http.StatusUnprocessableEntity)
				if len(p.Errors) == 0 {
					t.Fatalf("no errors listed: %+v", p)
				}
				for _, loc := range p.locations() {
					if !strings.HasPrefix(loc, "body") {
						t.Fatalf("error location %q", loc)
					}
				}
			})
		}
		t.Run(path+"/the bad field is named", func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			for _, name := range []string{"", "Acme\x00Ltd", strings.Repeat("x", 201)} {
				p := e.do(http.MethodPost, path, e.operator(), map[string]any{"name": name}).wantProblem(http.StatusUnprocessableEntity)
				if locs := p.locations(); len(locs) != 1 || locs[0] != "body.name" {
					t.Fatalf("name %q: locations %v, want [body.name]", name, locs)
				}
			}
		})
		t.Run(path+"/malformed JSON", func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			e.do(http.MethodPost, path, e.operator(), `{"name": "Acme"`).wantProblem(http.StatusBadRequest)
		})
	}
}

func TestGetAccount(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	otherSellerID, otherSeller := e.seller()
	buyerID, buyer := e.buyer()
	_, otherBuyer := e.buyer()
	ops := e.operator()

	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"operator reads a seller", "/v1/sellers/" + sellerID, ops, http.StatusOK},
		{"operator reads a buyer", "/v1/buyers/" + buyerID, ops, http.StatusOK},
		{"seller reads itself", "/v1/sellers/" + sellerID, seller, http.StatusOK},
		{"buyer reads itself", "/v1/buyers/" + buyerID, buyer, http.StatusOK},
		{"seller reads another seller", "/v1/sellers/" + otherSellerID, seller, http.StatusNotFound},
		{"other seller reads the seller", "/v1/sellers/" + sellerID, otherSeller, http.StatusNotFound},
		{"buyer reads another buyer", "/v1/buyers/" + buyerID, otherBuyer, http.StatusNotFound},
		{"buyer reads a seller", "/v1/sellers/" + sellerID, buyer, http.StatusForbidden},
		{"seller reads a buyer", "/v1/buyers/" + buyerID, seller, http.StatusForbidden},
		{"operator reads an absent seller", "/v1/sellers/" + uuid.NewString(), ops, http.StatusNotFound},
		{"operator reads an absent buyer", "/v1/buyers/" + uuid.NewString(), ops, http.StatusNotFound},
		{"a buyer's id is not a seller", "/v1/sellers/" + buyerID, ops, http.StatusNotFound},
		{"a seller's id is not a buyer", "/v1/buyers/" + sellerID, ops, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			r := e.do(http.MethodGet, tc.path, tc.token, nil)
			if tc.want != http.StatusOK {
				p := r.wantProblem(tc.want)
				if strings.Contains(string(r.Body), "acct ") {
					t.Fatalf("refusal leaks the account: %+v", p)
				}
				return
			}
			r.want(http.StatusOK)
			a := accountJSON(t, r.Body, "acct "+strings.TrimSuffix(strings.Split(tc.path, "/")[2], "s"))
			if !strings.HasSuffix(tc.path, a.ID) {
				t.Fatalf("read %s for %s", a.ID, tc.path)
			}
		})
	}
}

func TestAccountPathValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	for _, id := range []string{
		"not-a-uuid",
		"123",
		"00000000-0000-0000-0000-00000000000g",
		"00000000-0000-0000-0000-0000000000000",
		"'%20OR%201=1--",
	} {
		for _, kind := range []string{"sellers", "buyers"} {
			t.Run(kind+"/"+id, func(t *testing.T) {
				t.Parallel()
				e := e.in(t)
				for _, tok := range []string{e.operator(), seller} {
					p := e.do(http.MethodGet, "/v1/"+kind+"/"+id, tok, nil).wantProblem(http.StatusUnprocessableEntity)
					if locs := p.locations(); len(locs) != 1 || locs[0] != "path.id" {
						t.Fatalf("locations %v, want [path.id]", locs)
					}
				}
			})
		}
	}
}

// TestAccountPathURNForm: huma's "uuid" format accepts "urn:uuid:<id>",
// PostgreSQL's uuid type does not; the difference must never reach the
// client as a 500.
func TestAccountPathURNForm(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id, _ := e.seller()
	r := e.doRaw(http.MethodGet, "/v1/sellers/urn:uuid:"+id, e.operator(), nil)
	if r.Status >= 500 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
}
