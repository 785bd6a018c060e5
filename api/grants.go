package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/store"
)

// GrantPath names one grant.
type GrantPath struct {
	SellerID string `path:"seller_id" format:"uuid" doc:"The seller granting access."`
	BuyerID  string `path:"buyer_id" format:"uuid" doc:"The buyer receiving access."`
}

// GrantedAccount is the other party of a grant.
type GrantedAccount struct {
	Account
	GrantedAt time.Time `json:"granted_at" doc:"When the grant was made."`
}

func toGrantedAccount(g store.Grant) GrantedAccount {
	return GrantedAccount{Account: toAccount(g.Account), GrantedAt: g.GrantedAt}
}

// SellerBuyersInput lists a seller's grants.
type SellerBuyersInput struct {
	SellerID string `path:"seller_id" format:"uuid"`
	Pagination
}

// BuyerSellersInput lists a buyer's grants.
type BuyerSellersInput struct {
	BuyerID string `path:"buyer_id" format:"uuid"`
	Pagination
}

// GrantListOutput is a page of granted accounts.
type GrantListOutput struct {
	Body ListBody[GrantedAccount]
}

func (h *handlers) registerGrants(a huma.API) {
	// ownSeller lets the seller itself or an operator manage a seller's grants.
	ownSeller := func(ctx context.Context, seller string) error {
		p, err := allow(ctx, store.RoleOperator, store.RoleSeller)
		if err != nil {
			return err
		}
		if p.Role == store.RoleSeller && p.Subject != canonicalID(seller) {
			return huma.Error404NotFound("not found")
		}
		return nil
	}
	// exists answers 404 for an account that is not there, so an operator
	// listing an unknown account's grants is told so rather than shown nothing.
	exists := func(ctx context.Context, role store.Role, id string) error {
		if _, err := h.store.Account(ctx, role, id); err != nil {
			return h.fail(ctx, err)
		}
		return nil
	}
	huma.Register(a, huma.Operation{
		OperationID:   "grant-buyer",
		Method:        http.MethodPut,
		Path:          "/v1/sellers/{seller_id}/buyers/{buyer_id}",
		Summary:       "Authorise a buyer",
		Description:   "Lets the buyer read the seller's deals and receive their events. Idempotent.",
		Tags:          []string{"Grants"},
		Security:      secured(),
		DefaultStatus: http.StatusNoContent,
		Errors:        errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *GrantPath) (*struct{}, error) {
		if err := ownSeller(ctx, in.SellerID); err != nil {
			return nil, err
		}
		if err := h.store.PutGrant(ctx, in.SellerID, in.BuyerID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
	huma.Register(a, huma.Operation{
		OperationID:   "revoke-buyer",
		Method:        http.MethodDelete,
		Path:          "/v1/sellers/{seller_id}/buyers/{buyer_id}",
		Summary:       "Revoke a buyer",
		Description:   "The buyer stops seeing the seller's deals at once, and pending deliveries to it are cancelled. Idempotent.",
		Tags:          []string{"Grants"},
		Security:      secured(),
		DefaultStatus: http.StatusNoContent,
		Errors:        errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *GrantPath) (*struct{}, error) {
		if err := ownSeller(ctx, in.SellerID); err != nil {
			return nil, err
		}
		if err := h.store.DeleteGrant(ctx, in.SellerID, in.BuyerID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "list-seller-buyers",
		Method:      http.MethodGet,
		Path:        "/v1/sellers/{seller_id}/buyers",
		Summary:     "List the buyers a seller authorised",
		Description: "Ordered by buyer ID. The seller itself or an operator.",
		Tags:        []string{"Grants"},
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *SellerBuyersInput) (*GrantListOutput, error) {
		if err := ownSeller(ctx, in.SellerID); err != nil {
			return nil, err
		}
		if err := exists(ctx, store.RoleSeller, in.SellerID); err != nil {
			return nil, err
		}
		page, err := h.store.GrantedBuyers(ctx, in.SellerID, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &GrantListOutput{Body: listBody(page, toGrantedAccount)}, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "list-buyer-sellers",
		Method:      http.MethodGet,
		Path:        "/v1/buyers/{buyer_id}/sellers",
		Summary:     "List the sellers that authorised a buyer",
		Description: "Ordered by seller ID. The buyer itself or an operator.",
		Tags:        []string{"Grants"},
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *BuyerSellersInput) (*GrantListOutput, error) {
		p, err := allow(ctx, store.RoleOperator, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		if p.Role == store.RoleBuyer && p.Subject != canonicalID(in.BuyerID) {
			return nil, huma.Error404NotFound("not found")
		}
		if err := exists(ctx, store.RoleBuyer, in.BuyerID); err != nil {
			return nil, err
		}
		page, err := h.store.GrantingSellers(ctx, in.BuyerID, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &GrantListOutput{Body: listBody(page, toGrantedAccount)}, nil
	})
}
