package auction

import "time"

// The auction workflow as its starter sees it: package workflows
// implements it under WorkflowType; the dispatcher starts it when it hands
// over the seller's copy of auction.created, and signals it when it hands
// over the close or the cancellation, so both ride on the outbox.

// WorkflowType is the registered name of the auction workflow.
const WorkflowType = "AuctionClock"

// ChangedSignal wakes an auction's workflow to read the auction again
// (closed by its seller, or cancelled) rather than at its next deadline.
const ChangedSignal = "auction-changed"

// WorkflowID is an auction's workflow: one per auction, so a repeated
// start is recognised and refused by Temporal.
func WorkflowID(auctionID string) string { return "auction-" + auctionID }

// WorkflowInput names the auction whose clock the workflow keeps.
type WorkflowInput struct {
	AuctionID string
}

// CloseLead is how long before closes_at the auction's workflow wakes to
// close it; the close activity waits out the rest itself, so the close
// starts at closes_at, not after the timer's and the workflow task's own
// delays.
const CloseLead = 500 * time.Millisecond
