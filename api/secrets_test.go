package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/store"
)

// logBuffer collects what the service logs; handlers log concurrently.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// failUpdatesOf makes the database refuse updates of the endpoint whose
// description is marker, for as long as the test runs: a stand-in for any
// failure below the API, to drive the 500 path.
func failUpdatesOf(t *testing.T, marker string) {
	t.Helper()
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "test_fail_" + hex.EncodeToString(suffix[:])
	ctx := context.Background()
	_, err := testDB.Pool.Exec(ctx, `
		CREATE FUNCTION `+name+`() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.description = '`+marker+`' THEN
				RAISE EXCEPTION 'injected failure updating endpoint %', OLD.id;
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER `+name+` BEFORE UPDATE ON webhook_endpoints FOR EACH ROW EXECUTE FUNCTION `+name+`();`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = testDB.Pool.Exec(ctx, `DROP TRIGGER `+name+` ON webhook_endpoints; DROP FUNCTION `+name+`();`)
	})
}

// TestSecretsNeverInLogsOrAnswers drives everything that handles a
// webhook secret or a token (creating and rotating endpoints, reading,
// listing, patching and deleting them, validation errors, refused tokens,
// a failure below the API answered 500) with the service logging JSON at
// debug level, then checks that no log line holds a webhook secret (nor
// its key bytes), a bearer token or the JWT signing secret, and that no
// answer but the create or rotate that returned it holds a secret.
func TestSecretsNeverInLogsOrAnswers(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	e := setupDeps(t, func(d *api.Deps) {
		d.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		d.Delivery = &recordingDelivery{}
	})
	sellerID, seller := e.seller()
	buyerID, buyer := e.buyer()
	_, stranger := e.buyer()
	e.grant(sellerID, seller, buyerID)
	tokens := []string{seller, buyer, stranger, e.operator()}

	var secrets []string
	var answers []*response // every answer that must not show a secret
	call := func(method, path, token string, body any, headers ...string) *response {
		t.Helper()
		r := e.doRaw(method, path, token, body, headers...)
		answers = append(answers, r)
		return r
	}
	create := func(url, description string) api.EndpointWithSecret {
		t.Helper()
		var ep api.EndpointWithSecret
		e.do(http.MethodPost, endpointsPath, buyer, map[string]any{"url": url, "description": description}).
			want(http.StatusCreated).decode(&ep)
		secrets = append(secrets, ep.Secret)
		return ep
	}
	rotate := func(id string) {
		t.Helper()
		var ep api.EndpointWithSecret
		e.do(http.MethodPost, endpointPath(id)+"/rotate-secret", buyer, nil).want(http.StatusOK).decode(&ep)
		secrets = append(secrets, ep.Secret)
	}

	a := create("https://hooks.example.com/a?token=receiver-own-token", "first")
	rotate(a.ID)
	rotate(a.ID)
	b := create("https://hooks.example.com/b", "second")
	call(http.MethodGet, endpointPath(a.ID), buyer, nil).want(http.StatusOK)
	call(http.MethodGet, endpointsPath, buyer, nil).want(http.StatusOK)
	call(http.MethodPatch, endpointPath(a.ID), buyer, map[string]any{"description": "changed", "enabled": false}).want(http.StatusOK)
	call(http.MethodPatch, endpointPath(a.ID), buyer, map[string]any{"enabled": true}).want(http.StatusOK)
	call(http.MethodDelete, endpointPath(b.ID), buyer, nil).want(http.StatusNoContent)

	// Validation errors, and requests for what the caller may not see.
	call(http.MethodPost, endpointsPath, buyer, map[string]any{"url": "http://127.0.0.1/x"}).want(http.StatusUnprocessableEntity)
	call(http.MethodPost, endpointsPath, buyer, map[string]any{"url": "https://hooks.example.com/x", "description": "\x00"}).want(http.StatusUnprocessableEntity)
	call(http.MethodPatch, endpointPath(a.ID), buyer, map[string]any{"event_types": []string{"deal.deleted"}}).want(http.StatusUnprocessableEntity)
	call(http.MethodPatch, endpointPath(a.ID), buyer, map[string]any{"url": "ftp://hooks.example.com/"}).want(http.StatusUnprocessableEntity)
	call(http.MethodPatch, endpointPath(a.ID), buyer, `{"enabled":"yes"}`).want(http.StatusUnprocessableEntity)
	call(http.MethodGet, endpointPath(a.ID), stranger, nil).want(http.StatusNotFound)
	call(http.MethodPost, endpointPath(a.ID)+"/rotate-secret", stranger, nil).want(http.StatusNotFound)
	call(http.MethodPost, endpointPath(a.ID)+"/rotate-secret", seller, nil).want(http.StatusNotFound)
	call(http.MethodGet, deliveriesPath+"?endpoint_id="+a.ID, buyer, nil).want(http.StatusOK)
	call(http.MethodGet, "/v1/events?after=evt_nope", buyer, nil).want(http.StatusUnprocessableEntity)

	// Refused tokens: never logged, never echoed.
	for _, tok := range tokens {
		call(http.MethodGet, endpointsPath, "", nil, "Authorization", "Bearer "+tok+"x").want(http.StatusUnauthorized)
		call(http.MethodGet, endpointsPath, "", nil, "Authorization", "Basic "+tok).want(http.StatusUnauthorized)
	}
	call(http.MethodGet, "/v1/sellers/"+uuid.NewString(), e.token(store.RoleSeller, uuid.NewString()), nil).want(http.StatusUnauthorized)

	// A failure below the API, on the rotation path: the new secret was
	// made, the write fails, and the client gets a bare 500.
	marker := "fail-" + uuid.NewString()
	c := create("https://hooks.example.com/c", marker)
	failUpdatesOf(t, marker)
	r := call(http.MethodPost, endpointPath(c.ID)+"/rotate-secret", buyer, nil)
	if r.Status != http.StatusInternalServerError {
		t.Fatalf("rotation with a failing database: status %d: %s", r.Status, r.Body)
	}
	if p := r.problem(); p.Detail != "internal error" || len(p.Errors) != 0 {
		t.Fatalf("the 500 says more than it should: %s", r.Body)
	}
	if !strings.Contains(logs.String(), "injected failure") {
		t.Fatalf("the failure was not logged; logs:\n%s", logs.String())
	}

	// What must never appear.
	forbidden := map[string]string{"the JWT secret": testSecret}
	for i, tok := range tokens {
		forbidden["token "+string(rune('A'+i))] = tok
	}
	for i, s := range secrets {
		name := "webhook secret " + string(rune('A'+i))
		forbidden[name] = s
		forbidden[name+" without its prefix"] = strings.TrimPrefix(s, "whsec_")
	}
	logText := logs.String()
	for name, v := range forbidden {
		if strings.Contains(logText, v) {
			t.Errorf("the logs contain %s", name)
		}
	}
	if strings.Contains(logText, "whsec_") || strings.Contains(logText, "receiver-own-token") {
		t.Errorf("the logs contain a secret or the receiver's token:\n%s", logText)
	}
	for _, r := range answers {
		text := string(r.Body) + strings.Join(headerValues(r.Header), "\n")
		for name, v := range forbidden {
			if strings.Contains(text, v) {
				t.Errorf("a %d answer contains %s: %s", r.Status, name, r.Body)
			}
		}
		if strings.Contains(text, "whsec_") {
			t.Errorf("a %d answer contains a secret: %s", r.Status, r.Body)
		}
	}
	if len(logText) == 0 {
		t.Fatal("nothing was logged; the test proves nothing")
	}
}

func headerValues(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

// secretName matches identifiers that hold secret material.
var secretName = regexp.MustCompile(`(?i)secret|signature|\bsig\b|hmac|\bmac\b|token|password`)

// TestSecretsComparedInConstantTime reads the packages that handle
// secrets and fails on any ==, != or bytes/strings comparison whose
// operand is named like secret material, other than a test for emptiness:
// such comparisons return early at the first differing byte, and the
// time they take tells an attacker how much of a guess was right. The
// comparisons that matter are made in constant time by the libraries:
// golang-jwt checks HS256 signatures with hmac.Equal, AES-GCM checks its
// tag in constant time, and receivers verify webhook signatures on their
// side (docs/webhooks.md shows hmac.Equal).
func TestSecretsComparedInConstantTime(t *testing.T) {
	t.Parallel()
	dirs := []string{".", "../internal/auth", "../internal/webhook", "../internal/config", "../activities"}
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.BinaryExpr:
					if (x.Op == token.EQL || x.Op == token.NEQ) && !isEmptiness(x.X) && !isEmptiness(x.Y) &&
						(secretOperand(x.X) || secretOperand(x.Y)) {
						t.Errorf("%s: %s compares secret material with %s", fset.Position(x.Pos()), render(x), x.Op)
					}
				case *ast.CallExpr:
					if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
						pkg, _ := sel.X.(*ast.Ident)
						if pkg != nil && (pkg.Name == "bytes" || pkg.Name == "strings") &&
							(sel.Sel.Name == "Equal" || sel.Sel.Name == "EqualFold" || sel.Sel.Name == "Compare" || sel.Sel.Name == "HasPrefix") {
							for _, arg := range x.Args {
								if secretOperand(arg) {
									t.Errorf("%s: %s.%s on secret material", fset.Position(x.Pos()), pkg.Name, sel.Sel.Name)
								}
							}
						}
					}
				}
				return true
			})
		}
	}
	if checked < 10 {
		t.Fatalf("only %d files read: the paths are wrong", checked)
	}
}

// isEmptiness reports an operand that only tests for absence: "", nil, 0.
func isEmptiness(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return x.Value == `""` || x.Value == "0"
	case *ast.Ident:
		return x.Name == "nil"
	case *ast.CallExpr:
		if f, ok := x.Fun.(*ast.Ident); ok && (f.Name == "len" || f.Name == "cap") {
			return true
		}
	}
	return false
}

// secretOperand reports an operand named like secret material.
func secretOperand(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return secretName.MatchString(x.Name)
	case *ast.SelectorExpr:
		return secretName.MatchString(x.Sel.Name)
	case *ast.IndexExpr:
		return secretOperand(x.X)
	case *ast.SliceExpr:
		return secretOperand(x.X)
	case *ast.CallExpr:
		// string(secret), []byte(secret)
		if len(x.Args) == 1 {
			return secretOperand(x.Args[0])
		}
	case *ast.ParenExpr:
		return secretOperand(x.X)
	}
	return false
}

func render(e *ast.BinaryExpr) string {
	name := func(x ast.Expr) string {
		switch v := x.(type) {
		case *ast.Ident:
			return v.Name
		case *ast.SelectorExpr:
			return "…." + v.Sel.Name
		}
		return "…"
	}
	return name(e.X) + " " + e.Op.String() + " " + name(e.Y)
}
