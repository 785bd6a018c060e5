package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// strictQuery refuses a query string the operation would otherwise read
// wrongly: net/url silently drops a pair that is not valid
// percent-encoding (so ?cursor=%zz would answer the first page), and a
// repeated parameter is read as its first value. Parameters the operation
// does not declare are ignored, so a client may send ones added later.
func strictQuery(a huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if msg, param := checkQuery(ctx.URL().RawQuery, ctx.Operation()); msg != "" {
			var errs []error
			if param != "" {
				errs = append(errs, &huma.ErrorDetail{Location: "query." + param, Message: msg})
			}
			_ = huma.WriteErr(a, ctx, http.StatusBadRequest, msg, errs...)
			return
		}
		next(ctx)
	}
}

// checkQuery says what is wrong with a raw query string, and the
// parameter at fault when it can be named; "" when nothing is wrong.
func checkQuery(raw string, op *huma.Operation) (msg, param string) {
	if raw == "" {
		return "", ""
	}
	seen := map[string]bool{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return "a query parameter's name is not valid percent-encoding", ""
		}
		name, param := queryName(key)
		if strings.Contains(pair, ";") {
			// net/url drops such a pair whole; ';' is no separator (use '&').
			return fmt.Sprintf("%s contains ';', which is not a separator in a query string (use '&')", name), param
		}
		if _, err := url.QueryUnescape(rawValue); err != nil {
			return fmt.Sprintf("%s is not valid percent-encoding", name), param
		}
		p := declaredQuery(op, key)
		if p == nil {
			continue
		}
		if seen[key] && (p.Schema == nil || p.Schema.Type != "array") {
			return fmt.Sprintf("%s is given more than once; it takes one value", name), param
		}
		seen[key] = true
	}
	return "", ""
}

// queryName names a parameter in a message, unless its name is not fit
// to echo; param is the name when it is.
func queryName(key string) (name, param string) {
	if s, ok := echoable(key).(string); ok && s != "" && !strings.ContainsAny(s, "\x00\r\n") {
		return "query parameter " + s, s
	}
	return "a query parameter", ""
}

func declaredQuery(op *huma.Operation, name string) *huma.Param {
	for _, p := range op.Parameters {
		if p.In == "query" && p.Name == name {
			return p
		}
	}
	return nil
}
