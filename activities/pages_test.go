package activities_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// A batch's first pages go out in one call: each event reaches every
// entitled endpoint once and its outcome is recorded; an event that no
// longer exists has nothing to deliver and does not fail the others; an
// event named twice is sent once; a second call (the activity retried)
// sends nothing again.
func TestDeliverPagesServesEveryEventOfTheBatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ok := webhooktest.NewReceiver(t)
	failing := webhooktest.NewReceiver(t, status(503))
	okBuyer, failingBuyer := f.buyer(true), f.buyer(true)
	okEndpoint, secret := f.endpoint(okBuyer, ok.URL())
	failingEndpoint, _ := f.endpoint(failingBuyer, failing.URL())
	events := []store.EventRef{f.event(), f.event(), f.event()}
	pages := []activities.RoundInput{
		{EventID: events[0].ID, Limit: 100, NextAttemptIn: time.Minute},
		{EventID: "evt_" + uuid.NewString(), Limit: 100, NextAttemptIn: time.Minute}, // never committed
		{EventID: events[1].ID, Limit: 100, NextAttemptIn: time.Minute},
		{EventID: events[2].ID, Limit: 100, NextAttemptIn: time.Minute},
		{EventID: events[0].ID, Limit: 100, NextAttemptIn: time.Minute}, // named again
	}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	run := func() []activities.RoundResult {
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(f.acts)
		val, err := env.ExecuteActivity(f.acts.DeliverPages, pages)
		if err != nil {
			t.Fatalf("DeliverPages: %v", err)
		}
		var res []activities.RoundResult
		if err := val.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := run()
	if len(res) != len(pages) || res[1] != (activities.RoundResult{}) {
		t.Fatalf("results %+v, want one per page and nothing for the missing event", res)
	}
	for _, i := range []int{0, 2, 3, 4} {
		if want := (activities.RoundResult{Sent: 2, Succeeded: 1, Pending: 1}); res[i] != want {
			t.Errorf("page %d: %+v, want %+v", i, res[i], want)
		}
	}
	got := map[string]int{}
	for _, a := range ok.Arrivals() {
		if !webhooktest.Verify(secret, a) {
			t.Fatalf("signature %q does not verify", a.Signature())
		}
		got[a.ID()]++
	}
	for _, ev := range events {
		if got[ev.ID] != 1 {
			t.Errorf("event %s reached the healthy endpoint %d times, want once", ev.ID, got[ev.ID])
		}
		if d := f.delivery(okBuyer, ev.ID, okEndpoint); d.Status != store.DeliverySucceeded {
			t.Errorf("event %s: delivery %+v, want succeeded", ev.ID, d)
		}
		if d := f.delivery(failingBuyer, ev.ID, failingEndpoint); d.Status != store.DeliveryPending || d.Attempts != 1 {
			t.Errorf("event %s: delivery %+v, want pending after 1 attempt", ev.ID, d)
		}
	}

	// Retried, the call resumes: the healthy endpoint hears nothing more,
	// the failing one is tried again.
	run()
	if n := len(ok.Arrivals()); n != len(events) {
		t.Errorf("healthy endpoint got %d requests after the retry, want %d", n, len(events))
	}
	if n := len(failing.Arrivals()); n != 2*len(events) {
		t.Errorf("failing endpoint got %d requests after the retry, want %d", n, 2*len(events))
	}
}
