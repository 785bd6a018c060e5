package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/store"
)

// CreateDealInput is a new deal from a seller.
type CreateDealInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Repeat a create safely: the same key and body within 24 h return the first response; the same key with another body is 409."`
	Body           deal.Draft
}

// DealOutput returns one deal with its version as ETag.
type DealOutput struct {
	ETag     string `header:"ETag" doc:"The deal's version, for If-Match."`
	Location string `header:"Location" doc:"The deal's URL (on create)."`
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response of an earlier request with the same Idempotency-Key."`
	Body     deal.Deal
}

// DealPath names one deal.
type DealPath struct {
	ID string `path:"id" format:"uuid" doc:"Deal ID."`
}

// PatchDealInput is a JSON merge patch of a deal.
type PatchDealInput struct {
	ID      string     `path:"id" format:"uuid" doc:"Deal ID."`
	IfMatch string     `header:"If-Match" doc:"Apply only if the deal is at this version (its ETag); 412 otherwise."`
	Body    deal.Patch `contentType:"application/merge-patch+json"`
}

// ListDealsInput filters and pages deals.
type ListDealsInput struct {
	Seller string      `query:"seller" format:"uuid" doc:"Only this seller's deals."`
	Status deal.Status `query:"status" enum:"available,sold" doc:"Only deals in this status."`
	Pagination
}

// DealListOutput is a page of deals, newest first.
type DealListOutput struct {
	Body ListBody[deal.Deal]
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// parseIfMatch reads an If-Match header: "3", W/"3" or 3; nil for "*" or
// none. A value that names no version can match nothing.
func parseIfMatch(h string) (*int64, error) {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return nil, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	v, err := strconv.ParseInt(h, 10, 64)
	if err != nil {
		return nil, store.ErrVersionMismatch
	}
	return &v, nil
}

func (h *handlers) registerDeals(a huma.API) {
	huma.Register(a, huma.Operation{
		OperationID: "create-deal",
		Method:      http.MethodPost,
		Path:        "/v1/deals",
		Summary:     "Create a deal",
		Description: "A seller posts a deal. total_price must equal the sum of the items' prices; net_price is computed. " +
			"Every buyer the seller authorised receives a deal.created event.",
		Tags:          []string{"Deals"},
		Security:      secured(),
		DefaultStatus: http.StatusCreated,
		Errors:        errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *CreateDealInput) (*DealOutput, error) {
		p, err := allow(ctx, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		d, err := deal.New(uuid.NewString(), p.Subject, in.Body)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		var idem *store.Idempotency
		if in.IdempotencyKey != "" {
			if err := checkText("header.Idempotency-Key", in.IdempotencyKey); err != nil {
				return nil, err
			}
			// The request is compared in its parsed form, with the default
			// status filled in, so key order, spacing or writing the
			// default out do not make two identical requests differ.
			body := in.Body
			if body.Status == "" {
				body.Status = deal.StatusAvailable
			}
			req, err := json.Marshal(body)
			if err != nil {
				return nil, h.fail(ctx, err)
			}
			idem = &store.Idempotency{Key: in.IdempotencyKey, Request: req}
		}
		created, replayed, event, err := h.store.CreateDeal(ctx, d, idem)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		h.dispatch(ctx, event)
		out := &DealOutput{ETag: etag(created.Version), Location: "/v1/deals/" + created.ID, Body: created}
		if replayed {
			out.Replayed = "true"
		}
		return out, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "get-deal",
		Method:      http.MethodGet,
		Path:        "/v1/deals/{id}",
		Summary:     "Get a deal",
		Description: "The owning seller, or a buyer that seller authorises. Anyone else gets 404.",
		Tags:        []string{"Deals"},
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *DealPath) (*DealOutput, error) {
		p, err := allow(ctx, store.RoleSeller, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		var d deal.Deal
		if p.Role == store.RoleSeller {
			d, err = h.store.DealForSeller(ctx, in.ID, p.Subject)
		} else {
			d, err = h.store.DealForBuyer(ctx, in.ID, p.Subject)
		}
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &DealOutput{ETag: etag(d.Version), Body: d}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "update-deal",
		Method:      http.MethodPatch,
		Path:        "/v1/deals/{id}",
		Summary:     "Update a deal",
		Description: "JSON merge patch (RFC 7396) of name, total_price, currency, discount (null removes it), status and items " +
			"(replaced whole). The result must obey every rule of a new deal. With If-Match the patch applies only to that " +
			"version. A patch that changes nothing returns the deal unchanged and sends no event; any other bumps the " +
			"version and sends deal.updated with the old values in data.previous. While the deal has a scheduled or open " +
			"auction, a patch that changes anything but name is 409.",
		Tags:     []string{"Deals"},
		Security: secured(),
		Errors: errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict,
			http.StatusPreconditionFailed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
			http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *PatchDealInput) (*DealOutput, error) {
		p, err := allow(ctx, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		ifMatch, err := parseIfMatch(in.IfMatch)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		d, event, err := h.store.PatchDeal(ctx, in.ID, p.Subject, ifMatch, in.Body)
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatch(ctx, event)
		return &DealOutput{ETag: etag(d.Version), Body: d}, nil
	})
	acceptPlainJSON(a, "/v1/deals/{id}")

	huma.Register(a, huma.Operation{
		OperationID: "list-deals",
		Method:      http.MethodGet,
		Path:        "/v1/deals",
		Summary:     "List deals",
		Description: "A seller lists its own deals; a buyer lists the deals of every seller that authorises it. Newest first, " +
			"keyset-paginated: pages stay stable while deals are added.",
		Tags:     []string{"Deals"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListDealsInput) (*DealListOutput, error) {
		p, err := allow(ctx, store.RoleSeller, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		f := store.DealFilter{Seller: canonicalID(in.Seller), Status: in.Status}
		var page store.Page[deal.Deal]
		if p.Role == store.RoleSeller {
			page, err = h.store.SellerDeals(ctx, p.Subject, f, in.Cursor, in.Limit)
		} else {
			page, err = h.store.BuyerDeals(ctx, p.Subject, f, in.Cursor, in.Limit)
		}
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &DealListOutput{Body: listBody(page, func(d deal.Deal) deal.Deal { return d })}, nil
	})
}

// acceptPlainJSON documents that the PATCH at path takes its merge patch
// as application/merge-patch+json and as plain application/json alike.
func acceptPlainJSON(a huma.API, path string) {
	op := a.OpenAPI().Paths[path].Patch
	if op == nil || op.RequestBody == nil {
		return
	}
	c := op.RequestBody.Content
	for _, ct := range []string{"application/merge-patch+json", "application/json"} {
		if mt, ok := c[ct]; ok {
			c["application/merge-patch+json"], c["application/json"] = mt, mt
			return
		}
	}
}
