package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
)

// benchBody is about the size of a deal.updated event with two items.
var benchBody = bytes.Repeat([]byte("x"), 665)

func benchReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSend is one delivery through Sender: the URL check, signing,
// the request, reading and classifying the answer.
func BenchmarkSend(b *testing.B) {
	srv := benchReceiver(b)
	s := webhook.NewSender(webhook.ClientOptions{AllowPrivate: true})
	key := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := s.Send(context.Background(), webhook.Request{URL: srv.URL + "/hook", MsgID: "evt_1", Timestamp: time.Now(), Body: benchBody, Secrets: [][]byte{key}})
			if r.Outcome != webhook.Succeeded {
				b.Fatal(r.Err)
			}
		}
	})
}

// BenchmarkPlainPost is the same exchange with net/http alone: what
// BenchmarkSend costs above it is Sender's own work.
func BenchmarkPlainPost(b *testing.B) {
	srv := benchReceiver(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	key := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ts := time.Now()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader(benchBody))
			req.Header.Set("webhook-id", "evt_1")
			req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
			req.Header.Set("webhook-signature", webhook.Sign("evt_1", ts, benchBody, key))
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
