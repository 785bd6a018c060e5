package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/store"
)

// Account is a seller or a buyer.
type Account struct {
	ID        string    `json:"id" format:"uuid" doc:"Account ID; the sub of the account's tokens."`
	Name      string    `json:"name" example:"Acme Wholesale"`
	CreatedAt time.Time `json:"created_at"`
}

func toAccount(a store.Account) Account { return Account(a) }

// AccountInput is the body of account creation.
type AccountInput struct {
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"200" doc:"Display name." example:"Acme Wholesale"`
	}
}

// AccountOutput returns one account.
type AccountOutput struct {
	Body Account
}

// AccountPath names one account.
type AccountPath struct {
	ID string `path:"id" format:"uuid" doc:"Account ID."`
}

func (h *handlers) registerAccounts(a huma.API) {
	for _, kind := range []struct {
		role   store.Role
		plural string
		tag    string
	}{{store.RoleSeller, "sellers", "Sellers"}, {store.RoleBuyer, "buyers", "Buyers"}} {
		role := kind.role
		huma.Register(a, huma.Operation{
			OperationID:   "create-" + string(role),
			Method:        http.MethodPost,
			Path:          "/v1/" + kind.plural,
			Summary:       "Create a " + string(role),
			Description:   "Operators create " + kind.plural + ". The returned id is the `sub` of the account's tokens.",
			Tags:          []string{kind.tag},
			Security:      secured(),
			DefaultStatus: http.StatusCreated,
			Errors:        errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
		}, func(ctx context.Context, in *AccountInput) (*AccountOutput, error) {
			if _, err := allow(ctx, store.RoleOperator); err != nil {
				return nil, err
			}
			if err := checkText("body.name", in.Body.Name); err != nil {
				return nil, err
			}
			acc, err := h.store.CreateAccount(ctx, role, in.Body.Name)
			if err != nil {
				return nil, h.fail(ctx, err)
			}
			return &AccountOutput{Body: toAccount(acc)}, nil
		})
		huma.Register(a, huma.Operation{
			OperationID: "get-" + string(role),
			Method:      http.MethodGet,
			Path:        "/v1/" + kind.plural + "/{id}",
			Summary:     "Get a " + string(role),
			Description: "Operators read any " + string(role) + "; a " + string(role) + " reads itself.",
			Tags:        []string{kind.tag},
			Security:    secured(),
			Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
		}, func(ctx context.Context, in *AccountPath) (*AccountOutput, error) {
			p, err := allow(ctx, store.RoleOperator, role)
			if err != nil {
				return nil, err
			}
			if p.Role == role && p.Subject != canonicalID(in.ID) {
				return nil, huma.Error404NotFound("not found")
			}
			acc, err := h.store.Account(ctx, role, in.ID)
			if err != nil {
				return nil, h.fail(ctx, err)
			}
			return &AccountOutput{Body: toAccount(acc)}, nil
		})
	}
}
