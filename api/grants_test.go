package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func grantPath(sellerID, buyerID string) string {
	return "/v1/sellers/" + sellerID + "/buyers/" + buyerID
}

// grantedAccount is one entry of a grant list.
type grantedAccount struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	GrantedAt time.Time `json:"granted_at"`
}

// grantPage is one page of a grant list; Next is nil when next_cursor is null.
type grantPage struct {
	Data []grantedAccount
	Next *string
}

// listPage reads one page and checks the list envelope: data is an array
// (never null) and next_cursor is present, a string or null.
func (e *env) listPage(path, token string) grantPage {
	e.t.Helper()
	r := e.do(http.MethodGet, path, token, nil).want(http.StatusOK)
	var raw map[string]json.RawMessage
	r.decode(&raw)
	if len(raw) != 2 || !strings.HasPrefix(string(raw["data"]), "[") || raw["next_cursor"] == nil {
		e.t.Fatalf("list envelope: %s", r.Body)
	}
	var p grantPage
	if err := json.Unmarshal(raw["data"], &p.Data); err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(raw["next_cursor"], &p.Next); err != nil {
		e.t.Fatalf("next_cursor %s: %v", raw["next_cursor"], err)
	}
	if p.Next != nil && *p.Next == "" {
		e.t.Fatal("next_cursor is an empty string; want null at the end")
	}
	return p
}

// listAll walks a list with the given page size and returns the ids in
// order, failing on a repeated id or a page over the limit.
func (e *env) listAll(path, token string, limit int) []string {
	e.t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			e.t.Fatal("pagination does not end")
		}
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := e.listPage(path+"?"+q.Encode(), token)
		if len(p.Data) > limit {
			e.t.Fatalf("page of %d over limit %d", len(p.Data), limit)
		}
		for _, a := range p.Data {
			if slices.Contains(ids, a.ID) {
				e.t.Fatalf("%s listed twice", a.ID)
			}
			ids = append(ids, a.ID)
		}
		if p.Next == nil {
			return ids
		}
		if len(p.Data) < limit {
			e.t.Fatalf("short page of %d with a next cursor", len(p.Data))
		}
		cursor = *p.Next
	}
}

func TestGrantIsIdempotent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, by := range []string{"seller", "operator"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			e := e.in(t)
			sellerID, seller := e.seller()
			buyerID, buyer := e.buyer()
			tok := seller
			if by == "operator" {
				tok = e.operator()
			}
			for range 2 {
				r := e.do(http.MethodPut, grantPath(sellerID, buyerID), tok, nil).want(http.StatusNoContent)
				if len(r.Body) != 0 {
					t.Fatalf("204 with a body: %s", r.Body)
				}
			}
			p := e.listPage("/v1/sellers/"+sellerID+"/buyers", seller)
			if len(p.Data) != 1 || p.Data[0].ID != buyerID || p.Data[0].Name != "acct buyer" {
				t.Fatalf("seller's buyers after granting twice: %+v", p.Data)
			}
			first := p.Data[0].GrantedAt
			if d := time.Since(first); d < -time.Minute || d > time.Minute {
				t.Fatalf("granted_at %v", first)
			}
			// Granting again does not move granted_at.
			e.do(http.MethodPut, grantPath(sellerID, buyerID), tok, nil).want(http.StatusNoContent)
			if again := e.listPage("/v1/sellers/"+sellerID+"/buyers", seller).Data[0].GrantedAt; !again.Equal(first) {
				t.Fatalf("granted_at moved from %v to %v", first, again)
			}
			b := e.listPage("/v1/buyers/"+buyerID+"/sellers", buyer)
			if len(b.Data) != 1 || b.Data[0].ID != sellerID || !b.Data[0].GrantedAt.Equal(first) {
				t.Fatalf("buyer's sellers: %+v", b.Data)
			}

			for range 2 {
				r := e.do(http.MethodDelete, grantPath(sellerID, buyerID), tok, nil).want(http.StatusNoContent)
				if len(r.Body) != 0 {
					t.Fatalf("204 with a body: %s", r.Body)
				}
			}
			if p := e.listPage("/v1/sellers/"+sellerID+"/buyers", seller); len(p.Data) != 0 || p.Next != nil {
				t.Fatalf("seller's buyers after revoking: %+v", p)
			}
			if p := e.listPage("/v1/buyers/"+buyerID+"/sellers", buyer); len(p.Data) != 0 {
				t.Fatalf("buyer's sellers after revoking: %+v", p)
			}
			// A revoked grant can be given again.
			e.do(http.MethodPut, grantPath(sellerID, buyerID), tok, nil).want(http.StatusNoContent)
			if p := e.listPage("/v1/sellers/"+sellerID+"/buyers", seller); len(p.Data) != 1 {
				t.Fatalf("seller's buyers after granting again: %+v", p)
			}
		})
	}
}

func TestGrantConcurrentPuts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, _ := e.buyer()
	var wg sync.WaitGroup
	status := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			status <- e.doRaw(http.MethodPut, grantPath(sellerID, buyerID), seller, nil).Status
		})
	}
	wg.Wait()
	close(status)
	for s := range status {
		if s != http.StatusNoContent {
			t.Fatalf("concurrent PUT answered %d", s)
		}
	}
	if p := e.listPage("/v1/sellers/"+sellerID+"/buyers", seller); len(p.Data) != 1 {
		t.Fatalf("after concurrent PUTs: %+v", p.Data)
	}
}

func TestGrantByAnotherSeller(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	_, other := e.seller()
	buyerID, _ := e.buyer()
	granted, _ := e.buyer()
	e.grant(sellerID, seller, granted)

	e.do(http.MethodPut, grantPath(sellerID, buyerID), other, nil).wantProblem(http.StatusNotFound)
	e.do(http.MethodDelete, grantPath(sellerID, granted), other, nil).wantProblem(http.StatusNotFound)
	e.do(http.MethodGet, "/v1/sellers/"+sellerID+"/buyers", other, nil).wantProblem(http.StatusNotFound)
	// Nothing changed.
	p := e.listPage("/v1/sellers/"+sellerID+"/buyers", e.operator())
	if len(p.Data) != 1 || p.Data[0].ID != granted {
		t.Fatalf("seller's buyers: %+v", p.Data)
	}
}

func TestGrantByBuyer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, _ := e.seller()
	buyerID, buyer := e.buyer()
	// Not even for itself: a buyer cannot authorise itself.
	e.do(http.MethodPut, grantPath(sellerID, buyerID), buyer, nil).wantProblem(http.StatusForbidden)
	e.do(http.MethodDelete, grantPath(sellerID, buyerID), buyer, nil).wantProblem(http.StatusForbidden)
	e.do(http.MethodGet, "/v1/sellers/"+sellerID+"/buyers", buyer, nil).wantProblem(http.StatusForbidden)
	if p := e.listPage("/v1/buyers/"+buyerID+"/sellers", buyer); len(p.Data) != 0 {
		t.Fatalf("buyer granted itself: %+v", p.Data)
	}
}

func TestGrantUnknownAccounts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	otherSellerID, _ := e.seller()
	buyerID, _ := e.buyer()
	missing := uuid.NewString()
	for _, tc := range []struct {
		name, path, token string
	}{
		{"seller grants an absent buyer", grantPath(sellerID, missing), seller},
		{"seller grants another seller", grantPath(sellerID, otherSellerID), seller},
		{"operator grants an absent buyer", grantPath(sellerID, missing), e.operator()},
		{"operator grants for an absent seller", grantPath(missing, buyerID), e.operator()},
		{"operator grants for a buyer as seller", grantPath(buyerID, buyerID), e.operator()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e.in(t).do(http.MethodPut, tc.path, tc.token, nil).wantProblem(http.StatusNotFound)
		})
	}
}

func TestGrantPathValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	for _, tc := range []struct {
		name, method, path, token, location string
	}{
		{"PUT bad buyer id", http.MethodPut, grantPath(sellerID, "nope"), seller, "path.buyer_id"},
		{"PUT bad seller id", http.MethodPut, grantPath("nope", buyerID), e.operator(), "path.seller_id"},
		{"DELETE bad buyer id", http.MethodDelete, grantPath(sellerID, "nope"), seller, "path.buyer_id"},
		{"list bad seller id", http.MethodGet, "/v1/sellers/nope/buyers", e.operator(), "path.seller_id"},
		{"list bad buyer id", http.MethodGet, "/v1/buyers/nope/sellers", buyer, "path.buyer_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := e.in(t).do(tc.method, tc.path, tc.token, nil).wantProblem(http.StatusUnprocessableEntity)
			if !slices.Contains(p.locations(), tc.location) {
				t.Fatalf("locations %v, want %s", p.locations(), tc.location)
			}
		})
	}
}

func TestRevokeAbsentGrant(t *testing.T) {
	t.Parallel()
	// Revoking is idempotent: the state the caller asks for already holds.
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, _ := e.buyer()
	e.do(http.MethodDelete, grantPath(sellerID, buyerID), seller, nil).want(http.StatusNoContent)
	e.do(http.MethodDelete, grantPath(sellerID, buyerID), e.operator(), nil).want(http.StatusNoContent)
}

func TestSellerBuyersList(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	_, otherSeller := e.seller()
	buyerID, buyer := e.buyer()
	var want []string
	for range 5 {
		id, _ := e.buyer()
		e.grant(sellerID, seller, id)
		want = append(want, id)
	}
	// Another seller's grants are not in this seller's list.
	otherSellerID, _ := e.seller()
	e.grant(otherSellerID, e.token("seller", otherSellerID), buyerID)
	slices.Sort(want) // ordered by buyer id
	path := "/v1/sellers/" + sellerID + "/buyers"

	for _, limit := range []int{1, 2, 3, 5, 6, 100} {
		for _, tok := range []string{seller, e.operator()} {
			if got := e.listAll(path, tok, limit); !slices.Equal(got, want) {
				t.Fatalf("limit %d: %v, want %v", limit, got, want)
			}
		}
	}
	// The default page holds all five, with no next page.
	if p := e.listPage(path, seller); len(p.Data) != 5 || p.Next != nil {
		t.Fatalf("default page: %d items, next %v", len(p.Data), p.Next)
	}
	// Exactly limit items left: no next page is offered.
	if p := e.listPage(path+"?limit=5", seller); len(p.Data) != 5 || p.Next != nil {
		t.Fatalf("limit 5: %d items, next %v", len(p.Data), p.Next)
	}
	if p := e.listPage(path+"?limit=4", seller); len(p.Data) != 4 || p.Next == nil {
		t.Fatalf("limit 4: %d items, next %v", len(p.Data), p.Next)
	}

	// Visible only to that seller and operators.
	e.do(http.MethodGet, path, otherSeller, nil).wantProblem(http.StatusNotFound)
	e.do(http.MethodGet, path, buyer, nil).wantProblem(http.StatusForbidden)

	// A seller without grants has an empty list, not null.
	lonely, lonelyTok := e.seller()
	if p := e.listPage("/v1/sellers/"+lonely+"/buyers", lonelyTok); p.Data == nil || len(p.Data) != 0 || p.Next != nil {
		t.Fatalf("empty list: %+v", p)
	}
}

func TestSellerBuyersListStableUnderInserts(t *testing.T) {
	t.Parallel()
	// Grants made while a client pages never make it see a buyer twice
	// or miss one that was there when it started.
	e := setup(t)
	sellerID, seller := e.seller()
	var before []string
	for range 6 {
		id, _ := e.buyer()
		e.grant(sellerID, seller, id)
		before = append(before, id)
	}
	path := "/v1/sellers/" + sellerID + "/buyers?limit=2"
	var seen []string
	p := e.listPage(path, seller)
	for {
		for _, a := range p.Data {
			if slices.Contains(seen, a.ID) {
				t.Fatalf("%s seen twice", a.ID)
			}
			seen = append(seen, a.ID)
		}
		if p.Next == nil {
			break
		}
		id, _ := e.buyer()
		e.grant(sellerID, seller, id)
		p = e.listPage(path+"&cursor="+url.QueryEscape(*p.Next), seller)
	}
	for _, id := range before {
		if !slices.Contains(seen, id) {
			t.Fatalf("%s, granted before paging began, was skipped", id)
		}
	}
}

func TestBuyerSellersList(t *testing.T) {
	t.Parallel()
	e := setup(t)
	buyerID, buyer := e.buyer()
	_, otherBuyer := e.buyer()
	_, seller := e.seller()
	var want []string
	for range 4 {
		id, tok := e.seller()
		e.grant(id, tok, buyerID)
		want = append(want, id)
	}
	// A revoked grant is not listed.
	revoked, revokedTok := e.seller()
	e.grant(revoked, revokedTok, buyerID)
	e.do(http.MethodDelete, grantPath(revoked, buyerID), revokedTok, nil).want(http.StatusNoContent)
	slices.Sort(want)
	path := "/v1/buyers/" + buyerID + "/sellers"

	for _, limit := range []int{1, 3, 4, 20} {
		for _, tok := range []string{buyer, e.operator()} {
			if got := e.listAll(path, tok, limit); !slices.Equal(got, want) {
				t.Fatalf("limit %d: %v, want %v", limit, got, want)
			}
		}
	}
	p := e.listPage(path, buyer)
	for _, a := range p.Data {
		if a.Name != "acct seller" || a.CreatedAt.IsZero() || a.GrantedAt.Before(a.CreatedAt) {
			t.Fatalf("entry %+v", a)
		}
	}

	e.do(http.MethodGet, path, otherBuyer, nil).wantProblem(http.StatusNotFound)
	e.do(http.MethodGet, path, seller, nil).wantProblem(http.StatusForbidden)
}

func TestGrantListQueryValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	for _, base := range []struct{ path, token string }{
		{"/v1/sellers/" + sellerID + "/buyers", seller},
		{"/v1/buyers/" + buyerID + "/sellers", buyer},
	} {
		for _, tc := range []struct{ query, location string }{
			{"limit=0", "query.limit"},
			{"limit=101", "query.limit"},
			{"limit=-1", "query.limit"},
			{"limit=ten", "query.limit"},
			{"cursor=not-a-cursor", "query.cursor"},
			{"cursor=" + url.QueryEscape(strings.Repeat("A", 600)), "query.cursor"},
			// Well-formed base64 of JSON, but not a position this service made.
			{"cursor=eyJpIjoieCJ9", "query.cursor"},
		} {
			t.Run(base.path+"?"+tc.query, func(t *testing.T) {
				t.Parallel()
				p := e.in(t).do(http.MethodGet, base.path+"?"+tc.query, base.token, nil).wantProblem(http.StatusUnprocessableEntity)
				if !slices.Contains(p.locations(), tc.location) {
					t.Fatalf("locations %v, want %s", p.locations(), tc.location)
				}
			})
		}
	}
}

// TestGrantListOfAbsentAccount: the contract answers 404 for what is
// absent, so an operator listing the grants of a seller or buyer that does
// not exist is told so rather than shown an empty list.
func TestGrantListOfAbsentAccount(t *testing.T) {
	t.Parallel()
	e := setup(t)
	missing := uuid.NewString()
	e.do(http.MethodGet, "/v1/sellers/"+missing+"/buyers", e.operator(), nil).wantProblem(http.StatusNotFound)
	e.do(http.MethodGet, "/v1/buyers/"+missing+"/sellers", e.operator(), nil).wantProblem(http.StatusNotFound)
}

func TestGrantControlsDealVisibility(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	_, bystander := e.buyer()
	r := e.do(http.MethodPost, "/v1/deals", seller, map[string]any{
		"name": "Pallet", "currency": "gbp", "total_price": 500,
		"items": []map[string]any{{"id": "p", "name": "Pallet", "price": 500}},
	}).want(http.StatusCreated)
	var d struct {
		ID string `json:"id"`
	}
	r.decode(&d)
	dealPath := "/v1/deals/" + d.ID
	// listed reports whether the deal is on the first page of tok's deals
	// (the only deal these accounts can see).
	listed := func(tok string) bool {
		t.Helper()
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		e.do(http.MethodGet, "/v1/deals", tok, nil).want(http.StatusOK).decode(&page)
		for _, x := range page.Data {
			if x.ID == d.ID {
				return true
			}
		}
		return false
	}

	e.do(http.MethodGet, dealPath, buyer, nil).wantProblem(http.StatusNotFound)
	if listed(buyer) {
		t.Fatal("deal listed before the grant")
	}

	e.grant(sellerID, seller, buyerID)
	e.do(http.MethodGet, dealPath, buyer, nil).want(http.StatusOK)
	if !listed(buyer) {
		t.Fatal("deal not listed after the grant")
	}
	e.do(http.MethodGet, dealPath, bystander, nil).wantProblem(http.StatusNotFound)
	if listed(bystander) {
		t.Fatal("deal listed for a buyer without a grant")
	}

	e.do(http.MethodDelete, grantPath(sellerID, buyerID), seller, nil).want(http.StatusNoContent)
	e.do(http.MethodGet, dealPath, buyer, nil).wantProblem(http.StatusNotFound)
	if listed(buyer) {
		t.Fatal("deal listed after the revoke")
	}
	// The seller's own access is not a grant.
	e.do(http.MethodGet, dealPath, seller, nil).want(http.StatusOK)

	// An operator's grant and revoke act the same.
	e.do(http.MethodPut, grantPath(sellerID, buyerID), e.operator(), nil).want(http.StatusNoContent)
	e.do(http.MethodGet, dealPath, buyer, nil).want(http.StatusOK)
	e.do(http.MethodDelete, grantPath(sellerID, buyerID), e.operator(), nil).want(http.StatusNoContent)
	e.do(http.MethodGet, dealPath, buyer, nil).wantProblem(http.StatusNotFound)
}

// TestGrantPathURNForm is TestAccountPathURNForm on the grant paths: the
// "urn:uuid:<id>" spelling must never reach the client as a 5xx.
func TestGrantPathURNForm(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sellerID, seller := e.seller()
	buyerID, _ := e.buyer()
	for _, tc := range []struct{ method, path, token string }{
		{http.MethodPut, grantPath(sellerID, "urn:uuid:"+buyerID), seller},
		{http.MethodDelete, grantPath(sellerID, "urn:uuid:"+buyerID), seller},
		{http.MethodGet, "/v1/sellers/urn:uuid:" + sellerID + "/buyers", e.operator()},
	} {
		if r := e.doRaw(tc.method, tc.path, tc.token, nil); r.Status >= 500 {
			t.Errorf("%s %s: status %d: %s", tc.method, tc.path, r.Status, r.Body)
		}
	}
}
