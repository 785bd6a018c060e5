package webhook_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
)

// referenceSignature is HMAC-SHA256 per Standard Webhooks, written with
// crypto/hmac so Sign's own HMAC is checked against the library one.
func referenceSignature(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestSignStandardWebhooksVector is the example from the Standard Webhooks
// reference libraries.
func TestSignStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	key, err := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`), key)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestSignMatchesCryptoHMAC(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 999_999_999) // sub-second part must be ignored
	body := make([]byte, 3000)
	rand.Read(body)
	// Key lengths around the SHA-256 block size (64), where HMAC changes
	// behaviour, plus the empty key.
	for n := 0; n <= 150; n++ {
		key := make([]byte, n)
		rand.Read(key)
		for _, b := range [][]byte{nil, body[:1], body[:64], body} {
			id := "evt_" + strings.Repeat("x", n) // also exercise long ids
			if got, want := webhook.Sign(id, ts, b, key), referenceSignature(key, id, ts, b); got != want {
				t.Fatalf("key %d bytes, body %d bytes: Sign = %s, want %s", n, len(b), got, want)
			}
		}
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1"}`)
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	got := webhook.Sign("evt_1", ts, body, k1, k2)
	want := referenceSignature(k1, "evt_1", ts, body) + " " + referenceSignature(k2, "evt_1", ts, body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if webhook.Sign("evt_1", ts, body) != "" {
		t.Fatal("Sign with no secrets is not empty")
	}
}

// TestSignConcurrent shares the pooled HMAC state between goroutines; run
// with -race.
func TestSignConcurrent(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			key := []byte(strings.Repeat(string(rune('a'+g)), 32+g))
			body := []byte(strings.Repeat("{}", 100*g))
			id := "evt_" + strconv.Itoa(g)
			want := referenceSignature(key, id, ts, body)
			for range 200 {
				if got := webhook.Sign(id, ts, body, key); got != want {
					t.Errorf("goroutine %d: Sign = %s, want %s", g, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	body := make([]byte, 1024)
	rand.Read(body)
	k1, k2 := make([]byte, 32), make([]byte, 32)
	rand.Read(k1)
	rand.Read(k2)
	ts := time.Unix(1700000000, 0)
	const id = "evt_01J9Z8Q4W5X6Y7Z8A9B0C1D2E3"
	for _, bc := range []struct {
		name    string
		secrets [][]byte
	}{
		{"secrets=1", [][]byte{k1}},
		{"secrets=2", [][]byte{k1, k2}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				webhook.Sign(id, ts, body, bc.secrets...)
			}
		})
	}
}
