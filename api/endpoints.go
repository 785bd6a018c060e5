package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
)

// SecretGrace is how long the previous secret keeps signing after a rotation.
const SecretGrace = 24 * time.Hour

// receivable is what each kind of account's endpoints can receive: buyers
// the deal and auction events of the sellers that authorise them, their
// outbids and their invoices' events; sellers their auctions', bids' and
// invoices' events.
var receivable = map[store.Role][]string{
	store.RoleBuyer: slices.Concat(typeNames(deal.EventCreated, deal.EventUpdated), typeNames(invoice.EventTypes...),
		typeNames(auction.BuyerEventTypes...)),
	store.RoleSeller: slices.Concat(typeNames(invoice.EventTypes...), typeNames(auction.SellerEventTypes...)),
}

func typeNames[T ~string](types ...T) []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return names
}

// Endpoint is a buyer's or a seller's webhook endpoint.
type Endpoint struct {
	ID             string    `json:"id" format:"uuid"`
	URL            string    `json:"url" format:"uri" example:"https://buyer.example/webhooks/dealcast"`
	Description    string    `json:"description"`
	EventTypes     []string  `json:"event_types" nullable:"false" example:"[\"deal.created\",\"deal.updated\"]"`
	Enabled        bool      `json:"enabled"`
	DisabledReason *string   `json:"disabled_reason" doc:"Why delivery disabled the endpoint (it answered 410 Gone); null when enabled."`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// EndpointWithSecret is an endpoint as returned on create and rotation:
// the only times its secret is shown.
type EndpointWithSecret struct {
	Endpoint
	Secret string `json:"secret" doc:"Signing secret, whsec_ + base64. Shown only now: store it." example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`
}

func toEndpoint(e store.Endpoint) Endpoint {
	return Endpoint{ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// CreateEndpointInput registers an endpoint.
type CreateEndpointInput struct {
	Body struct {
		URL         string   `json:"url" minLength:"1" maxLength:"2048" doc:"https URL that receives the events."`
		EventTypes  []string `json:"event_types,omitempty" nullable:"false" minItems:"1" maxItems:"11" enum:"deal.created,deal.updated,invoice.issued,invoice.paid,invoice.voided,invoice.overdue,auction.created,auction.updated,auction.closed,bid.placed,bid.outbid" doc:"Types to receive, among those the caller can receive (buyers: deal.*, auction.*, bid.outbid and invoice.*; sellers: auction.*, bid.placed and invoice.*); all of those when omitted."`
		Description string   `json:"description,omitempty" maxLength:"500"`
	}
}

// UpdateEndpointInput changes an endpoint (merge patch).
type UpdateEndpointInput struct {
	ID   string `path:"id" format:"uuid"`
	Body struct {
		URL         *string  `json:"url,omitempty" minLength:"1" maxLength:"2048"`
		EventTypes  []string `json:"event_types,omitempty" nullable:"false" minItems:"1" maxItems:"11" enum:"deal.created,deal.updated,invoice.issued,invoice.paid,invoice.voided,invoice.overdue,auction.created,auction.updated,auction.closed,bid.placed,bid.outbid" doc:"Types to receive, among those the caller can receive."`
		Description *string  `json:"description,omitempty" maxLength:"500"`
		Enabled     *bool    `json:"enabled,omitempty" doc:"Turn delivery on or off; re-enabling clears disabled_reason."`
	}
}

// EndpointPath names one endpoint.
type EndpointPath struct {
	ID string `path:"id" format:"uuid"`
}

// EndpointOutput returns an endpoint.
type EndpointOutput struct{ Body Endpoint }

// EndpointSecretOutput returns an endpoint with its secret.
type EndpointSecretOutput struct{ Body EndpointWithSecret }

// EndpointListInput pages endpoints.
type EndpointListInput struct{ Pagination }

// EndpointListOutput is a page of endpoints.
type EndpointListOutput struct{ Body ListBody[Endpoint] }

// checkEndpointURL refuses URLs delivery must never call.
func (h *handlers) checkEndpointURL(raw string) error {
	if err := checkText("body.url", raw); err != nil {
		return err
	}
	if err := webhook.CheckURL(raw, h.allowPrivate); err != nil {
		return huma.Error422UnprocessableEntity("validation failed",
			&huma.ErrorDetail{Location: "body.url", Message: err.Error(), Value: raw})
	}
	return nil
}

// checkEventTypes refuses a type listed twice (the schema's uniqueItems
// would say the same, but huma's check of it panics on items that are not
// strings, so the rule is kept here) and a type role cannot receive.
func checkEventTypes(role store.Role, types []string) error {
	for i, t := range types {
		loc := fmt.Sprintf("body.event_types[%d]", i)
		if slices.Contains(types[:i], t) {
			return huma.Error422UnprocessableEntity("validation failed",
				&huma.ErrorDetail{Location: loc, Message: "duplicates an earlier event type", Value: t})
		}
		if !slices.Contains(receivable[role], t) {
			return huma.Error422UnprocessableEntity("validation failed",
				&huma.ErrorDetail{Location: loc, Message: "a " + string(role) + " cannot receive this type; it can receive " + strings.Join(receivable[role], ", "), Value: t})
		}
	}
	return nil
}

// newSecret makes a secret and its sealed form for storage.
func (h *handlers) newSecret() (plain string, sealed []byte, err error) {
	plain, err = webhook.NewSecret()
	if err != nil {
		return "", nil, err
	}
	sealed, err = h.sealer.Seal(plain)
	return plain, sealed, err
}

func (h *handlers) registerEndpoints(a huma.API) {
	tags := []string{"Webhook endpoints"}
	huma.Register(a, huma.Operation{
		OperationID:   "create-webhook-endpoint",
		Method:        http.MethodPost,
		Path:          "/v1/webhook-endpoints",
		Summary:       "Register a webhook endpoint",
		Description:   "A buyer or a seller registers an https URL to receive its events (event_types defaults to every type the caller can receive). The response carries the signing secret, shown only here and on rotation.",
		Tags:          tags,
		Security:      secured(),
		DefaultStatus: http.StatusCreated,
		Errors:        errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *CreateEndpointInput) (*EndpointSecretOutput, error) {
		p, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		if err := h.checkEndpointURL(in.Body.URL); err != nil {
			return nil, err
		}
		if in.Body.Description != "" {
			if err := checkText("body.description", in.Body.Description); err != nil {
				return nil, err
			}
		}
		if err := checkEventTypes(p.Role, in.Body.EventTypes); err != nil {
			return nil, err
		}
		types := in.Body.EventTypes
		if len(types) == 0 {
			types = receivable[p.Role]
		}
		plain, sealed, err := h.newSecret()
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		e, err := h.store.CreateEndpoint(ctx, store.Endpoint{ID: uuid.NewString(), Owner: viewer(ctx), URL: in.Body.URL,
			Description: in.Body.Description, EventTypes: types, Secret: sealed})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &EndpointSecretOutput{Body: EndpointWithSecret{Endpoint: toEndpoint(e), Secret: plain}}, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "list-webhook-endpoints",
		Method:      http.MethodGet,
		Path:        "/v1/webhook-endpoints",
		Summary:     "List webhook endpoints",
		Description: "The caller's own endpoints, by ID.",
		Tags:        tags,
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *EndpointListInput) (*EndpointListOutput, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		page, err := h.store.Endpoints(ctx, viewer(ctx), in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &EndpointListOutput{Body: listBody(page, toEndpoint)}, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "get-webhook-endpoint",
		Method:      http.MethodGet,
		Path:        "/v1/webhook-endpoints/{id}",
		Summary:     "Get a webhook endpoint",
		Description: "One of the caller's own endpoints, without its secret (shown only on create and rotation).",
		Tags:        tags,
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *EndpointPath) (*EndpointOutput, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		e, err := h.store.Endpoint(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &EndpointOutput{Body: toEndpoint(e)}, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "update-webhook-endpoint",
		Method:      http.MethodPatch,
		Path:        "/v1/webhook-endpoints/{id}",
		Summary:     "Update a webhook endpoint",
		Description: "A merge patch: change the URL, event types or description, or set enabled to turn delivery off and on.",
		Tags:        tags,
		Security:    secured(),
		Errors:      errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *UpdateEndpointInput) (*EndpointOutput, error) {
		p, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		b := in.Body
		if err := checkEventTypes(p.Role, b.EventTypes); err != nil {
			return nil, err
		}
		if b.URL != nil {
			if err := h.checkEndpointURL(*b.URL); err != nil {
				return nil, err
			}
		}
		if b.Description != nil && *b.Description != "" {
			if err := checkText("body.description", *b.Description); err != nil {
				return nil, err
			}
		}
		e, err := h.store.UpdateEndpoint(ctx, viewer(ctx), in.ID, func(e *store.Endpoint) error {
			if b.URL != nil {
				e.URL = *b.URL
			}
			if b.EventTypes != nil {
				e.EventTypes = slices.Clone(b.EventTypes)
			}
			if b.Description != nil {
				e.Description = *b.Description
			}
			if b.Enabled != nil {
				e.Enabled = *b.Enabled
			}
			return nil
		})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &EndpointOutput{Body: toEndpoint(e)}, nil
	})
	acceptPlainJSON(a, "/v1/webhook-endpoints/{id}")
	huma.Register(a, huma.Operation{
		OperationID:   "delete-webhook-endpoint",
		Method:        http.MethodDelete,
		Path:          "/v1/webhook-endpoints/{id}",
		Summary:       "Delete a webhook endpoint",
		Description:   "Stops delivery to the endpoint, including pending retries. Its delivery log remains.",
		Tags:          tags,
		Security:      secured(),
		DefaultStatus: http.StatusNoContent,
		Errors:        errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *EndpointPath) (*struct{}, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		if err := h.store.DeleteEndpoint(ctx, viewer(ctx), in.ID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
	huma.Register(a, huma.Operation{
		OperationID: "rotate-webhook-endpoint-secret",
		Method:      http.MethodPost,
		Path:        "/v1/webhook-endpoints/{id}/rotate-secret",
		Summary:     "Rotate an endpoint's signing secret",
		Description: "Returns a new secret. For 24 hours both the old and the new secret sign every delivery " +
			"(two space-separated signatures), so receivers can switch without missing events.",
		Tags:     tags,
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *EndpointPath) (*EndpointSecretOutput, error) {
		_, err := allow(ctx, store.RoleBuyer, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		plain, sealed, err := h.newSecret()
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		e, err := h.store.UpdateEndpoint(ctx, viewer(ctx), in.ID, func(e *store.Endpoint) error {
			expires := time.Now().Add(SecretGrace).UTC()
			e.PreviousSecret, e.PreviousSecretExpiresAt = e.Secret, &expires
			e.Secret = sealed
			return nil
		})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &EndpointSecretOutput{Body: EndpointWithSecret{Endpoint: toEndpoint(e), Secret: plain}}, nil
	})
}
