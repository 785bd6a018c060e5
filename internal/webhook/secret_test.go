package webhook_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/dealcast/dealcast/internal/webhook"
)

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
	encoded, ok := strings.CutPrefix(a, "whsec_")
	if !ok {
		t.Fatalf("secret %q lacks whsec_ prefix", a)
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret body is not std base64 of 32 bytes: %d bytes, %v", len(raw), err)
	}
	key, err := webhook.DecodeSecret(a)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != string(raw) {
		t.Fatal("DecodeSecret does not return the encoded bytes")
	}
}

func TestDecodeSecretRejects(t *testing.T) {
	t.Parallel()
	const secretish = "c2VjcmV0c2VjcmV0c2VjcmV0"
	for name, s := range map[string]string{
		"no prefix":   "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"not base64":  "whsec_!!" + secretish,
		"url base64":  "whsec_" + base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 30))),
		"too short":   "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"too long":    "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)),
		"empty":       "whsec_",
		"just prefix": "",
	} {
		_, err := webhook.DecodeSecret(s)
		if err == nil {
			t.Errorf("%s: DecodeSecret(%q) succeeded", name, s)
			continue
		}
		if strings.Contains(err.Error(), secretish) {
			t.Errorf("%s: error quotes the secret: %v", name, err)
		}
	}
	// The Standard Webhooks test secret is 24 bytes, the smallest allowed.
	if _, err := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil {
		t.Fatal(err)
	}
}
