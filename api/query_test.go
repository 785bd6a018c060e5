package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// expectQueryRefused fails unless r is a 400 problem whose detail says
// want and, when param is not empty, whose errors name query.param.
func expectQueryRefused(r *response, want, param string) {
	r.t.Helper()
	if r.Status != http.StatusBadRequest {
		r.t.Errorf("status %d, want 400: %.300s", r.Status, r.Body)
		return
	}
	p := r.problem()
	if !strings.Contains(p.Detail, want) {
		r.t.Errorf("detail %q does not say %q", p.Detail, want)
	}
	if param != "" && (len(p.Errors) != 1 || p.Errors[0].Location != "query."+param) {
		r.t.Errorf("errors %v, want one at query.%s", p.locations(), param)
	}
}

// TestQueryStringIsStrict sends every operation query strings net/url
// would read wrongly: a pair that is not valid percent-encoding (which it
// drops), a repeated parameter (read as its first value) and ';' (which
// it drops). Each is a 400 naming the parameter. Parameters the operation
// does not declare are ignored, repeated or not.
func TestQueryStringIsStrict(t *testing.T) {
	t.Parallel()
	e, _ := setupWithDelivery(t)
	eachOperation(t, e, false, func(e *env, op specOperation, row matrixRow, w *world, c caller) {
		path := requestPath(e.t, op, row, w)
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		var body any
		if row.body != nil {
			body = row.body(w)
		}
		send := func(query string) *response {
			e.t.Helper()
			return e.do(op.Method, path+sep+query, w.tokens[c], body, row.header...)
		}
		expectQueryRefused(send("x=%zz"), "query parameter x is not valid percent-encoding", "x")
		expectQueryRefused(send("a=1&x=%2"), "query parameter x is not valid percent-encoding", "x")
		expectQueryRefused(send("%zz=1"), "a query parameter's name is not valid percent-encoding", "")
		expectQueryRefused(send("x=1;y=2"), "query parameter x contains ';'", "x")
		for _, q := range op.Query {
			expectQueryRefused(send(q+"=%zz"), "query parameter "+q+" is not valid percent-encoding", q)
			expectQueryRefused(send(q+"=1&"+q+"=1"), "query parameter "+q+" is given more than once", q)
		}
		// Last, as it may change what the following cases see.
		send("zz_unknown=1&zz_unknown=2&&").want(row.want[c])
	})
}

// TestQueryStringIsDecoded: percent-encoding that is valid still works,
// in names and values.
func TestQueryStringIsDecoded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, seller := e.seller()
	c := dealClient{e, seller}
	d := c.create(dealDraft(100))
	var page struct{ Data []struct{ ID string } }
	e.do(http.MethodGet, "/v1/deals?%73tatus=%61vailable&limit=%31", seller, nil).want(http.StatusOK).decode(&page)
	if len(page.Data) != 1 || page.Data[0].ID != d.ID {
		t.Errorf("got %+v, want the one deal %s", page.Data, d.ID)
	}
	expectProblem(e.do(http.MethodGet, "/v1/deals?status=%73old&status=sold", seller, nil), http.StatusBadRequest, "query.status")
}
