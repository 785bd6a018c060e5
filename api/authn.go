package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/store"
)

type principalKey struct{}

// authenticate verifies the bearer token of every secured operation and
// puts its principal in the context. A seller or buyer token must name an
// existing account of that role.
func authenticate(a huma.API, v *auth.Verifier, s *store.Store) func(huma.Context, func(huma.Context)) {
	// Accounts are never deleted, so a positive answer can be kept for good.
	var known sync.Map
	exists := func(ctx context.Context, p auth.Principal) (bool, error) {
		if p.Role == store.RoleOperator {
			return true, nil
		}
		key := string(p.Role) + ":" + p.Subject
		if _, ok := known.Load(key); ok {
			return true, nil
		}
		_, err := s.Account(ctx, p.Role, p.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		known.Store(key, struct{}{})
		return true, nil
	}
	return func(ctx huma.Context, next func(huma.Context)) {
		if len(ctx.Operation().Security) == 0 {
			next(ctx)
			return
		}
		unauthorized := func(msg string) {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="dealcast"`)
			_ = huma.WriteErr(a, ctx, http.StatusUnauthorized, msg)
		}
		// The scheme name is case-insensitive (RFC 9110 §11.1).
		header := ctx.Header("Authorization")
		scheme, token, ok := strings.Cut(header, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			unauthorized("missing bearer token")
			return
		}
		var (
			p   auth.Principal
			err error
		)
		if checked, ok := ctx.Context().Value(verifiedKey{}).(*verification); ok && subtle.ConstantTimeCompare([]byte(checked.token), []byte(token)) == 1 {
			p, err = checked.principal, checked.err
		} else {
			p, err = v.Verify(token)
		}
		if err != nil {
			unauthorized("invalid token")
			return
		}
		found, err := exists(ctx.Context(), p)
		if err != nil {
			_ = huma.WriteErr(a, ctx, http.StatusServiceUnavailable, "the database is unavailable; retry later")
			return
		}
		if !found {
			unauthorized("invalid token: no such account")
			return
		}
		next(huma.WithValue(ctx, principalKey{}, p))
	}
}

// principal returns the authenticated caller.
func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// allow returns the caller when its role is one of roles, else 403: the
// role can never perform the operation, so saying so reveals nothing.
func allow(ctx context.Context, roles ...store.Role) (auth.Principal, error) {
	p := principal(ctx)
	for _, r := range roles {
		if p.Role == r {
			return p, nil
		}
	}
	return p, huma.Error403Forbidden("this operation is not available to the " + string(p.Role) + " role")
}
