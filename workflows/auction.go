package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/store"
)

var (
	readAuctionClock = (*activities.Activities)(nil).ReadAuctionClock
	openAuction      = (*activities.Activities)(nil).OpenAuction
	closeAuction     = (*activities.Activities)(nil).CloseAuction
)

// AuctionClock keeps an auction's time: it sleeps on a durable timer until
// opens_at and has the auction opened, then until closes_at and has it
// closed. The database decides both: an activity that finds the deadline
// not yet passed (a bid moved closes_at, or the timer fired before the
// database's clock got there) returns the auction as it is, and the
// workflow sleeps again until the new deadline. No bid signals it; the
// seller's close or a cancellation (ChangedSignal) wakes it early to read
// the auction and end. It returns the auction's final status.
func AuctionClock(ctx workflow.Context, in auction.WorkflowInput) (auction.Status, error) {
	tx := transactions(ctx, "auction-local-activities", 10*time.Second, clockRetry)
	run := func(act any, clock *store.AuctionClock) error { return tx(act, in.AuctionID, clock) }
	changed := workflow.GetSignalChannel(ctx, auction.ChangedSignal)
	var clock store.AuctionClock
	if err := run(readAuctionClock, &clock); err != nil {
		return "", err
	}
	// Since version 1 a close wakes CloseLead early and its activity
	// waits for the deadline.
	early := workflow.GetVersion(ctx, "auction-local-activities", workflow.DefaultVersion, 1) == 1
	for clock.Status.Live() {
		deadline, act, wake := clock.ClosesAt, closeAuction, clock.ClosesAt
		if early {
			wake = deadline.Add(-auction.CloseLead)
		}
		if clock.Status == auction.StatusScheduled && clock.OpensAt.Before(clock.ClosesAt) {
			deadline, act, wake = clock.OpensAt, openAuction, clock.OpensAt
		}
		woken := false
		if wait := wake.Sub(workflow.Now(ctx)); wait > 0 {
			var err error
			if woken, err = signalledBefore(ctx, changed, wait); err != nil {
				return "", err
			}
			if woken {
				act = readAuctionClock
			}
		}
		before := clock
		if err := run(act, &clock); err != nil {
			return "", err
		}
		same := clock.Status == before.Status && clock.OpensAt.Equal(before.OpensAt) && clock.ClosesAt.Equal(before.ClosesAt)
		// Nothing changed at a deadline that passed (by the timer's clock,
		// or, since version 1, by the activity's wait): the database's
		// clock is behind. A short pause, not a busy loop.
		pause := same && !deadline.After(workflow.Now(ctx))
		if early {
			pause = same && !woken
		}
		if pause {
			if err := workflow.Sleep(ctx, 100*time.Millisecond); err != nil {
				return "", err
			}
		}
	}
	return clock.Status, nil
}

// clockRetry retries an auction's transactions until the database answers:
// an auction must close. An attempt lost with a killed worker is retried
// after the 10 s timeout, so that bounds a close's delay then.
var clockRetry = &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second}
