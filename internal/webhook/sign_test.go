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

// referenceSignature is one "v1,<base64>" signature entry written from the
// Standard Webhooks specification alone, sharing no code with Sign or
// Verify: HMAC-SHA256 under key of "{id}.{timestamp}.{body}", timestamp
// being the webhook-timestamp header as sent. It is this package's one
// independent check of both.
func referenceSignature(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// unix is ts as webhook-timestamp carries it.
func unix(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }

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
			if got, want := webhook.Sign(id, ts, b, key), referenceSignature(key, id, unix(ts), b); got != want {
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
	want := referenceSignature(k1, "evt_1", unix(ts), body) + " " + referenceSignature(k2, "evt_1", unix(ts), body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if webhook.Sign("evt_1", ts, body) != "" {
		t.Fatal("Sign with no secrets is not empty")
	}
}

// TestSignConcurrent signs from many goroutines at once, as the delivery
// workers do; run with -race.
func TestSignConcurrent(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			key := []byte(strings.Repeat(string(rune('a'+g)), 32+g))
			body := []byte(strings.Repeat("{}", 100*g))
			id := "evt_" + strconv.Itoa(g)
			want := referenceSignature(key, id, unix(ts), body)
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

func TestVerify(t *testing.T) {
	t.Parallel()
	key, err := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(strings.Repeat("k", 32))
	const id, stamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"
	body := []byte(`{"test": 2432232314}`)
	// The Standard Webhooks example's signature.
	const vector = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	for _, tc := range []struct {
		name            string
		id, stamp, body string
		signature       string
		key             []byte
		want            bool
	}{
		{"the example", id, stamp, string(body), vector, key, true},
		{"the example among others", id, stamp, string(body), "v2,abc v1,bm90IHRoaXM= " + vector + " v1a,x", key, true},
		{"another key's signature", id, stamp, string(body), referenceSignature(other, id, stamp, body), key, false},
		{"with another key", id, stamp, string(body), vector, other, false},
		{"another id", "msg_p5jXN8AQM9LWM0D4loKWxJel", stamp, string(body), vector, key, false},
		{"another timestamp", id, "1614265331", string(body), vector, key, false},
		{"another body", id, stamp, `{"test": 2432232315}`, vector, key, false},
		{"a non-v1 version", id, stamp, string(body), "v2" + vector[2:], key, false},
		{"not base64", id, stamp, string(body), "v1,!!!!", key, false},
		{"empty", id, stamp, string(body), "", key, false},
	} {
		if got := webhook.Verify(tc.id, tc.stamp, []byte(tc.body), tc.signature, tc.key); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
	// What Sign makes during a rotation verifies under each of its keys.
	ts := time.Unix(1700000000, 0)
	header := webhook.Sign(id, ts, body, key, other)
	for i, k := range [][]byte{key, other} {
		if !webhook.Verify(id, unix(ts), body, header, k) {
			t.Errorf("Sign's header %q does not verify with key %d", header, i)
		}
	}
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
