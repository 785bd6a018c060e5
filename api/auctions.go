package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/store"
)

// CreateAuctionInput is a seller's request to auction a deal.
type CreateAuctionInput struct {
	ID             string `path:"id" format:"uuid" doc:"Deal ID."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Repeat the request safely: the same key with the same body within 24 h returns the first auction."`
	Body           struct {
		StartPrice    int64      `json:"start_price" doc:"The lowest first bid, in minor units (> 0)." example:"1000"`
		MinIncrement  int64      `json:"min_increment" doc:"What every later bid must add to the best one, in minor units (> 0)." example:"100"`
		ClosesAt      time.Time  `json:"closes_at" doc:"When bidding closes: in the future and within 90 days."`
		ReservePrice  *int64     `json:"reserve_price,omitempty" doc:"The lowest bid that wins (>= start_price); none when omitted." example:"5000"`
		OpensAt       *time.Time `json:"opens_at,omitempty" doc:"When bidding opens (before closes_at); now when omitted."`
		ExtendSeconds *int       `json:"extend_seconds,omitempty" doc:"0..3600, default 0: a bid accepted within this many seconds of closes_at moves closes_at to its placed_at plus this." example:"60"`
	}
}

// AuctionOutput is one auction as the caller sees it.
type AuctionOutput struct {
	Location string `header:"Location" doc:"The auction's URL (on creation)."`
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response of an earlier request with the same Idempotency-Key."`
	Body     auction.Auction
}

// AuctionPath names one auction.
type AuctionPath struct {
	ID string `path:"id" format:"uuid" doc:"Auction ID."`
}

// ListAuctionsInput filters and pages auctions.
type ListAuctionsInput struct {
	DealID string         `query:"deal_id" format:"uuid" doc:"Only this deal's auctions."`
	Status auction.Status `query:"status" enum:"scheduled,open,closed,cancelled" doc:"Only auctions in this status."`
	Pagination
}

// AuctionListOutput is a page of auctions, newest first.
type AuctionListOutput struct {
	Body ListBody[auction.Auction]
}

// PlaceBidInput is a buyer's bid.
type PlaceBidInput struct {
	ID             string `path:"id" format:"uuid" doc:"Auction ID."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Required. Repeat a bid safely: the same key with the same amount within 24 h returns the first bid; the same key for another request is 409."`
	Body           struct {
		Amount int64 `json:"amount" doc:"In minor units: at least the auction's minimum_next_bid." example:"1200"`
	}
}

// BidOutput is an accepted bid.
type BidOutput struct {
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response of an earlier request with the same Idempotency-Key."`
	Body     auction.Bid
}

// ListBidsInput pages an auction's bids.
type ListBidsInput struct {
	ID string `path:"id" format:"uuid" doc:"Auction ID."`
	Pagination
}

// BidListOutput is a page of bids, newest first.
type BidListOutput struct {
	Body ListBody[auction.Bid]
}

func (h *handlers) registerAuctions(a huma.API) {
	huma.Register(a, huma.Operation{
		OperationID: "create-auction",
		Method:      http.MethodPost,
		Path:        "/v1/deals/{id}/auctions",
		Summary:     "Auction a deal",
		Description: "The deal's seller puts it up for auction in its currency. It opens at opens_at and closes at closes_at " +
			"without any request. While it is scheduled or open the deal cannot be bought, and a deal PATCH that changes " +
			"anything but name is 409. auction.created goes to the buyers the seller authorises and to the seller. 409 " +
			"when the deal is sold or already has a scheduled or open auction.",
		Tags:          []string{"Auctions"},
		Security:      secured(),
		DefaultStatus: http.StatusCreated,
		Errors: errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *CreateAuctionInput) (*AuctionOutput, error) {
		p, err := allow(ctx, store.RoleSeller)
		if err != nil {
			return nil, err
		}
		b := in.Body
		draft := auction.Draft{StartPrice: b.StartPrice, MinIncrement: b.MinIncrement, ReservePrice: b.ReservePrice,
			OpensAt: b.OpensAt, ClosesAt: b.ClosesAt, ExtendSeconds: b.ExtendSeconds}
		// A draft breaking only the rules about the time may repeat an
		// Idempotency-Key: the store replays it, or refuses it by the
		// database's clock, so a retry after closes_at gets its auction.
		if err := draft.Validate(time.Now()); err != nil && (in.IdempotencyKey == "" || draft.Validate(time.Time{}) != nil) {
			return nil, h.fail(ctx, err)
		}
		idem, err := h.idempotency(in.IdempotencyKey, struct {
			Deal string `json:"deal"`
			Body any    `json:"body"`
		}{canonicalID(in.ID), b})
		if err != nil {
			return nil, err
		}
		ch, err := h.store.CreateAuction(ctx, store.NewAuction{DealID: in.ID, Seller: p.Subject, Draft: draft, Idem: idem})
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, ch.Events)
		out := &AuctionOutput{Location: "/v1/auctions/" + ch.Auction.ID, Body: ch.Auction}
		if ch.Replayed {
			out.Replayed = "true"
		}
		return out, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "list-auctions",
		Method:      http.MethodGet,
		Path:        "/v1/auctions",
		Summary:     "List auctions",
		Description: "A seller lists its own auctions, a buyer those of the sellers that authorise it, an operator every " +
			"one. Newest first, keyset-paginated. A buyer's copies have no reserve_price and no winner.",
		Tags:     []string{"Auctions"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListAuctionsInput) (*AuctionListOutput, error) {
		page, err := h.store.Auctions(ctx, viewer(ctx), store.AuctionFilter{DealID: in.DealID, Status: in.Status}, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &AuctionListOutput{Body: listBody(page, func(x auction.Auction) auction.Auction { return x })}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "get-auction",
		Method:      http.MethodGet,
		Path:        "/v1/auctions/{id}",
		Summary:     "Get an auction",
		Description: "Its seller, a buyer the seller authorises (without reserve_price and winner; leading says whether " +
			"the caller holds the best bid), or an operator. Anyone else gets 404.",
		Tags:     []string{"Auctions"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *AuctionPath) (*AuctionOutput, error) {
		x, err := h.store.Auction(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &AuctionOutput{Body: x}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "place-bid",
		Method:      http.MethodPost,
		Path:        "/v1/auctions/{id}/bids",
		Summary:     "Bid in an auction",
		Description: "A buyer the seller authorises bids: the first bid must reach start_price, every later one best_bid " +
			"plus min_increment (422 naming body.amount with the minimum otherwise). Bids are accepted in the order the " +
			"database commits them, so of two concurrent bids that clear the same minimum one is accepted and the other " +
			"is 422. A bid accepted within extend_seconds of closes_at moves closes_at. Bids are binding. 409 unless the " +
			"auction is open. Idempotency-Key is required.",
		Tags:          []string{"Auctions"},
		Security:      secured(),
		DefaultStatus: http.StatusCreated,
		Errors: errorsOf(http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *PlaceBidInput) (*BidOutput, error) {
		p, err := allow(ctx, store.RoleBuyer)
		if err != nil {
			return nil, err
		}
		if in.IdempotencyKey == "" {
			return nil, huma.Error400BadRequest("Idempotency-Key is required for a bid")
		}
		idem, err := h.idempotency(in.IdempotencyKey, struct {
			Auction string `json:"auction"`
			Amount  int64  `json:"amount"`
		}{canonicalID(in.ID), in.Body.Amount})
		if err != nil {
			return nil, err
		}
		res, err := h.store.PlaceBid(ctx, store.PlaceBidRequest{AuctionID: in.ID, Buyer: p.Subject, Amount: in.Body.Amount, Idem: *idem})
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, res.Events)
		out := &BidOutput{Body: res.Bid}
		if res.Replayed {
			out.Replayed = "true"
		}
		return out, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "list-bids",
		Method:      http.MethodGet,
		Path:        "/v1/auctions/{id}/bids",
		Summary:     "List an auction's bids",
		Description: "The seller (or an operator) sees every bid with its buyer; a buyer sees only its own. Newest first.",
		Tags:        []string{"Auctions"},
		Security:    secured(),
		Errors:      errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *ListBidsInput) (*BidListOutput, error) {
		page, err := h.store.Bids(ctx, viewer(ctx), in.ID, in.Cursor, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &BidListOutput{Body: listBody(page, func(b auction.Bid) auction.Bid { return b })}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "close-auction",
		Method:      http.MethodPost,
		Path:        "/v1/auctions/{id}/close",
		Summary:     "Close an auction now",
		Description: "Its seller closes it as if closes_at had passed: the best bid wins if it meets the reserve (the deal " +
			"is sold and the winner's invoice issued), otherwise the deal stays available. auction.closed goes to the " +
			"authorised buyers and the seller. 409 unless it is scheduled or open.",
		Tags:     []string{"Auctions"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *AuctionPath) (*AuctionOutput, error) {
		if _, err := allow(ctx, store.RoleSeller); err != nil {
			return nil, err
		}
		v := viewer(ctx)
		ch, err := h.store.CloseAuction(ctx, in.ID, v, h.invoiceTerms)
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, ch.Events)
		return &AuctionOutput{Body: ch.Auction}, nil
	})

	huma.Register(a, huma.Operation{
		OperationID: "cancel-auction",
		Method:      http.MethodPost,
		Path:        "/v1/auctions/{id}/cancel",
		Summary:     "Cancel an auction",
		Description: "Its seller or an operator cancels a scheduled or open auction that has no bids (409 otherwise: bids " +
			"are binding). The deal is free to be bought or auctioned again; auction.updated goes to everyone.",
		Tags:     []string{"Auctions"},
		Security: secured(),
		Errors:   errorsOf(http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *AuctionPath) (*AuctionOutput, error) {
		if _, err := allow(ctx, store.RoleSeller, store.RoleOperator); err != nil {
			return nil, err
		}
		ch, err := h.store.CancelAuction(ctx, viewer(ctx), in.ID)
		if err != nil {
			return nil, h.failTrade(ctx, err)
		}
		h.dispatchAll(ctx, ch.Events)
		return &AuctionOutput{Body: ch.Auction}, nil
	})
}

// idempotency is the record of an Idempotency-Key for the request req
// stands for; nil without a key.
func (h *handlers) idempotency(key string, req any) (*store.Idempotency, error) {
	if key == "" {
		return nil, nil
	}
	if err := checkText("header.Idempotency-Key", key); err != nil {
		return nil, err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, errors.Join(huma.Error500InternalServerError("internal error"), err)
	}
	return &store.Idempotency{Key: key, Request: b}, nil
}
