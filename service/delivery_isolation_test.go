package service_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhook"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// TestStalledReceiverDoesNotDelayOthers: one buyer's endpoint hangs past
// the sender's timeout on every request; five other buyers of the same
// seller still receive each of three back-to-back events well within a
// second of the API's answer, as if the hanging one were not there.
func TestStalledReceiverDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const (
		stall = 8 * time.Second // the sender below gives up after 6 s
		fast  = 5
		// Far below the 6 s a delivery held behind the stall would take,
		// and far above a fast delivery's time even on a loaded machine
		// under the race detector.
		bound = 3 * time.Second
	)
	s := newStack(t)
	s.acts.Sender = webhook.NewSender(webhook.ClientOptions{AllowPrivate: true, Timeout: 6 * time.Second})
	seller, sellerTok := s.account(store.RoleSeller)

	stalledBuyer, stalledTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, stalledBuyer)
	stop := make(chan struct{})
	stalled := webhooktest.NewReceiver(t, webhooktest.WithOnArrival(func(webhooktest.Arrival) {
		select {
		case <-stop:
		case <-time.After(stall):
		}
	}))
	// Runs before the receiver's own Close, which waits for its handlers.
	t.Cleanup(func() { close(stop) })
	s.endpoint(stalledTok, stalled.URL())

	receivers := make([]*webhooktest.Receiver, fast)
	for i := range receivers {
		buyer, tok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, buyer)
		receivers[i] = webhooktest.NewReceiver(t)
		s.endpoint(tok, receivers[i].URL())
	}

	// Three events, each sent while the stalled endpoint still holds the
	// previous one.
	var (
		mu     sync.Mutex
		sentAt = map[int64]time.Time{} // deal version → API answer
	)
	d := s.createDeal(sellerTok, 100)
	mu.Lock()
	sentAt[d.Version] = time.Now()
	mu.Unlock()
	for _, price := range []int64{200, 300} {
		time.Sleep(200 * time.Millisecond)
		v := s.setPrice(sellerTok, d.ID, price)
		mu.Lock()
		sentAt[v.Version] = time.Now()
		mu.Unlock()
	}

	for i, r := range receivers {
		eventually(t, 10*time.Second, "three events at a fast receiver", func() bool { return len(r.Arrivals()) >= 3 })
		for _, a := range r.Arrivals() {
			ev := decodeEvent(t, a)
			mu.Lock()
			sent, ok := sentAt[ev.Data.Deal.Version]
			mu.Unlock()
			if !ok {
				t.Fatalf("receiver %d got version %d, which was never sent", i, ev.Data.Deal.Version)
			}
			latency := a.At.Sub(sent)
			if latency > bound {
				t.Errorf("receiver %d got version %d %v after the API answered; want under %v beside a receiver stalling %v",
					i, ev.Data.Deal.Version, latency, bound, stall)
			}
			t.Logf("receiver %d, version %d: %v", i, ev.Data.Deal.Version, latency.Round(time.Millisecond))
		}
	}
	// The stalled endpoint was asked too: the test would prove nothing otherwise.
	if n := len(stalled.Arrivals()); n == 0 {
		t.Fatal("the stalled receiver was never called")
	}

	// Its deliveries end as timeouts to be retried, and nobody else's do.
	var log struct {
		Data []struct {
			Status    string  `json:"status"`
			LastError *string `json:"last_error"`
		} `json:"data"`
	}
	eventually(t, 10*time.Second, "the stalled endpoint's attempts to time out", func() bool {
		s.call(http.MethodGet, "/v1/webhook-deliveries", stalledTok, nil, http.StatusOK, &log)
		return len(log.Data) > 0 && log.Data[len(log.Data)-1].LastError != nil
	})
	for _, d := range log.Data {
		if d.Status == "succeeded" {
			t.Errorf("a delivery to the stalled receiver succeeded: %+v", d)
		}
	}
}

// TestManyStalledEndpointsOfOneBuyerDoNotDelayOthers: one round sends an
// event to at most Activities.Concurrency endpoints at a time (64 in
// production, 16 here), in endpoint-ID order. A buyer may register any
// number of endpoints; if it registers three times that many that all hang,
// they hold every slot until the sender's timeout, and the other buyers'
// endpoints that come after them in ID order wait for it: one buyer
// delays every other buyer's deliveries by its own endpoints' timeouts.
func TestManyStalledEndpointsOfOneBuyerDoNotDelayOthers(t *testing.T) {
	t.Parallel()
	const (
		stall = 8 * time.Second // the sender below gives up after 6 s
		fast  = 5
		// Far below the 6 s a delivery held behind the stall would take,
		// and far above a fast delivery's time even on a loaded machine
		// under the race detector.
		bound = 3 * time.Second
	)
	s := newStack(t)
	s.acts.Sender = webhook.NewSender(webhook.ClientOptions{AllowPrivate: true, Timeout: 6 * time.Second})
	seller, sellerTok := s.account(store.RoleSeller)

	hog, hogTok := s.account(store.RoleBuyer)
	s.grant(seller, sellerTok, hog)
	stop := make(chan struct{})
	stalled := webhooktest.NewReceiver(t, webhooktest.WithOnArrival(func(webhooktest.Arrival) {
		select {
		case <-stop:
		case <-time.After(stall):
		}
	}))
	t.Cleanup(func() { close(stop) })
	for range 3 * s.acts.Concurrency {
		s.endpoint(hogTok, stalled.URL())
	}

	receivers := make([]*webhooktest.Receiver, fast)
	for i := range receivers {
		buyer, tok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, buyer)
		receivers[i] = webhooktest.NewReceiver(t)
		s.endpoint(tok, receivers[i].URL())
	}

	s.createDeal(sellerTok, 100)
	sent := time.Now()
	for i, r := range receivers {
		eventually(t, 15*time.Second, "the event at a fast receiver", func() bool { return len(r.Arrivals()) >= 1 })
		if latency := r.Arrivals()[0].At.Sub(sent); latency > bound {
			t.Errorf("receiver %d got the event %v after the API answered; want under %v whatever another buyer's endpoints do",
				i, latency.Round(time.Millisecond), bound)
		}
	}
}
