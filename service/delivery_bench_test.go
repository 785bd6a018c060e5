package service_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/grpc"

	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/store"
	"github.com/dealcast/dealcast/internal/webhooktest"
)

// BenchmarkWebhookLatency measures, at a steady rate of deal changes, the
// time from the API's response to each buyer's receiver getting the
// event, on real PostgreSQL and a real (in-process) Temporal server.
// BENCH_SECONDS sets the run length (default 10), BENCH_RATE the changes
// per second (default 20) and BENCH_BUYERS the buyers per change (default 10).
func BenchmarkWebhookLatency(b *testing.B) {
	seconds := envInt("BENCH_SECONDS", 10)
	rate := envInt("BENCH_RATE", 20)
	buyers := envInt("BENCH_BUYERS", 10)
	t := b
	s := newStack(t)
	seller, sellerTok := s.account(store.RoleSeller)

	var (
		mu       sync.Mutex
		sentAt   = map[string]time.Time{} // deal id + version → response time
		arrivals []struct {
			key string
			at  time.Time
		}
	)
	for range buyers {
		buyer, buyerTok := s.account(store.RoleBuyer)
		s.grant(seller, sellerTok, buyer)
		r := webhooktest.NewReceiver(t, webhooktest.WithOnArrival(func(a webhooktest.Arrival) {
			ev := decodeEvent(t, a)
			mu.Lock()
			arrivals = append(arrivals, struct {
				key string
				at  time.Time
			}{ev.Data.Deal.ID + "/" + strconv.FormatInt(ev.Data.Deal.Version, 10), a.At})
			mu.Unlock()
		}))
		s.endpoint(buyerTok, r.URL())
	}
	d := s.createDeal(sellerTok, 100)
	time.Sleep(time.Second) // let the first delivery warm connections and caches

	b.ResetTimer()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	changes := seconds * rate
	for i := range changes {
		<-tick.C
		v := s.setPrice(sellerTok, d.ID, int64(200+i))
		mu.Lock()
		sentAt[d.ID+"/"+strconv.FormatInt(v.Version, 10)] = time.Now()
		mu.Unlock()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, a := range arrivals {
			if _, ok := sentAt[a.key]; ok {
				n++
			}
		}
		mu.Unlock()
		if n >= changes*buyers || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	var lat []float64
	seen := map[string]int{}
	for _, a := range arrivals {
		sent, ok := sentAt[a.key]
		if !ok {
			continue
		}
		seen[a.key]++
		lat = append(lat, float64(a.at.Sub(sent).Microseconds())/1000)
	}
	slices.Sort(lat)
	lost := 0
	for key := range sentAt {
		if seen[key] < buyers {
			lost += buyers - seen[key]
		}
	}
	b.ReportMetric(percentile(lat, 50), "p50_ms")
	b.ReportMetric(percentile(lat, 99), "p99_ms")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(len(lat)), "deliveries")
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSweepBacklog measures how fast the sweeper hands a backlog of
// outbox events to a Temporal cluster BENCH_RTT_MS away (default 10): a
// client interceptor holds every call for that long, as a network would.
// BENCH_EVENTS sets the backlog (default 300).
func BenchmarkSweepBacklog(b *testing.B) {
	rtt := time.Duration(envInt("BENCH_RTT_MS", 10)) * time.Millisecond
	events := envInt("BENCH_EVENTS", 300)
	delay := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		time.Sleep(rtt)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	far, err := client.Dial(client.Options{
		HostPort:  temporal.GetFrontendHostPort(),
		Namespace: temporal.GetDefaultNamespace(),
		Logger:    sdklog.NewStructuredLogger(quietLogger()),
		ConnectionOptions: client.ConnectionOptions{
			DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(delay)},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer far.Close()
	s := newStackWith(b, far, nil)
	// A dispatcher that never runs: every event stays in the outbox.
	s.swapDelivery(delivery.NewDispatcher(far, s.store, quietLogger(), delivery.Options{TaskQueue: s.taskQueue}))
	_, sellerTok := s.account(store.RoleSeller)
	for i := range events {
		s.createDeal(sellerTok, int64(100+i))
	}
	b.ResetTimer()
	start := time.Now()
	n, err := s.dispatcher.SweepOnce(context.Background(), 0)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if n < events {
		b.Fatalf("swept %d events, want at least %d", n, events)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
}
