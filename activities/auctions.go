package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/store"
)

// ReadAuctionClock reads an auction's status and deadlines.
func (a *Activities) ReadAuctionClock(ctx context.Context, auctionID string) (store.AuctionClock, error) {
	c, err := a.Store.AuctionClockOf(ctx, auctionID)
	if errors.Is(err, store.ErrNotFound) {
		return c, temporal.NewNonRetryableApplicationError("auction not found", "AuctionNotFound", err)
	}
	return c, err
}

// OpenAuction opens a scheduled auction whose opens_at has passed by the
// database's clock, hands its auction.updated to delivery, and returns the
// auction's clock after it (unchanged when not yet due). Safe to repeat.
func (a *Activities) OpenAuction(ctx context.Context, auctionID string) (store.AuctionClock, error) {
	ch, err := a.Store.OpenAuction(ctx, auctionID)
	return a.afterChange(ctx, ch, err)
}

// CloseAuction closes an auction whose closes_at has passed by the
// database's clock: the outcome, the sale and the invoice in one
// transaction, with every other auction of the seller already due, then
// the events of all of them to delivery. It returns the auction's clock
// after it: still open, with a later closes_at, when a bid extended it or
// the worker's timer fired early. Safe to repeat: a closed auction stays
// as it closed.
func (a *Activities) CloseAuction(ctx context.Context, auctionID string) (store.AuctionClock, error) {
	terms := a.InvoiceTerms
	if terms <= 0 {
		terms = config.DefaultInvoiceTerms
	}
	// Woken up to CloseLead early: wait for the deadline here, so the
	// close starts on time.
	if c, err := a.Store.AuctionClockOf(ctx, auctionID); err == nil && c.Status.Live() {
		if wait := time.Until(c.ClosesAt); wait > 0 && wait <= 2*auction.CloseLead {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return store.AuctionClock{}, ctx.Err()
			}
		}
	}
	ch, events, err := a.Store.CloseDueAuctions(ctx, auctionID, terms)
	ch.Events = events
	return a.afterChange(ctx, ch, err)
}

func (a *Activities) afterChange(ctx context.Context, ch store.AuctionChange, err error) (store.AuctionClock, error) {
	if errors.Is(err, store.ErrNotFound) {
		return store.AuctionClock{}, temporal.NewNonRetryableApplicationError("auction not found", "AuctionNotFound", err)
	}
	if err != nil {
		return store.AuctionClock{}, err
	}
	for i := range ch.Events {
		// The auction's own workflow made this change: it needs no signal.
		ch.Events[i].AuctionID = ""
	}
	a.handOver(ctx, ch.Events...)
	return clockOf(ch.Auction), nil
}

func clockOf(x auction.Auction) store.AuctionClock {
	return store.AuctionClock{Status: x.Status, OpensAt: x.OpensAt, ClosesAt: x.ClosesAt}
}
