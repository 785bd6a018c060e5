package webhook_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/dealcast/dealcast/internal/webhook"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, webhook.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, key []byte) *webhook.Sealer {
	t.Helper()
	s, err := webhook.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSealer(t, newKey(t))
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{secret, "", "ünïcödé ✓", strings.Repeat("x", 10_000)} {
		sealed, err := s.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if plain != "" && bytes.Contains(sealed, []byte(plain)) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := s.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if got != plain {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
}

func TestSealerCiphertextsDiffer(t *testing.T) {
	t.Parallel()
	s := newSealer(t, newKey(t))
	a, _ := s.Seal("whsec_same")
	b, _ := s.Seal("whsec_same")
	if bytes.Equal(a, b) {
		t.Fatal("sealing the same plaintext twice gave the same bytes")
	}
	if a[0] != 1 || b[0] != 1 {
		t.Fatalf("key version bytes = %d, %d; want 1", a[0], b[0])
	}
}

func TestSealerDetectsTampering(t *testing.T) {
	t.Parallel()
	s := newSealer(t, newKey(t))
	sealed, err := s.Seal("whsec_tamper-me")
	if err != nil {
		t.Fatal(err)
	}
	// Flip one bit in every position: version, nonce, ciphertext, tag.
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if got, err := s.Open(bad); err == nil {
			t.Fatalf("byte %d flipped: Open succeeded with %q", i, got)
		}
	}
	for _, n := range []int{0, 1, 13, 28, len(sealed) - 1} {
		if _, err := s.Open(sealed[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: Open succeeded", n)
		}
	}
	if _, err := s.Open(append(bytes.Clone(sealed), 0)); err == nil {
		t.Fatal("extended by a byte: Open succeeded")
	}
}

func TestSealerWrongKey(t *testing.T) {
	t.Parallel()
	sealed, err := newSealer(t, newKey(t)).Seal("whsec_abc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSealer(t, newKey(t)).Open(sealed); err == nil {
		t.Fatal("a different key opened the value")
	}
}

func TestNewSealerKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := webhook.NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a %d-byte key", n)
		}
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	got, err := webhook.ParseKey(" " + base64.StdEncoding.EncodeToString(key) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("ParseKey returned other bytes")
	}
	const hidden = "dGhpcyBpcyB0aGUga2V5"
	for _, s := range []string{"", hidden, "!!" + hidden, base64.StdEncoding.EncodeToString(make([]byte, 33)), hex.EncodeToString(key)} {
		_, err := webhook.ParseKey(s)
		if err == nil {
			t.Errorf("ParseKey(%q) succeeded", s)
			continue
		}
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func TestSealerNeverPrintsKey(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	s := newSealer(t, key)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "sealer", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("start", "sealer", s)
	out := fmt.Sprintf("%v %+v %#v %s %x %q %v %+v %#v", s, s, s, s, s, s, *s, *s, *s) + logged.String()
	for _, form := range []string{
		base64.StdEncoding.EncodeToString(key),
		hex.EncodeToString(key),
		fmt.Sprint(key),
		string(key),
	} {
		if strings.Contains(out, form) {
			t.Fatalf("key material in output: %s", out)
		}
	}
	if !strings.Contains(out, "AES-256-GCM") {
		t.Fatalf("unhelpful description: %s", out)
	}
}
