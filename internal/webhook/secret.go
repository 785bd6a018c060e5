package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix marks an endpoint signing secret, as Standard Webhooks does,
// so a secret pasted into the wrong place is recognisable.
const SecretPrefix = "whsec_"

// secretBytes is the size of secrets Dealcast generates: 256 bits, the
// HMAC-SHA256 output size.
const secretBytes = 32

// Standard Webhooks recommends symmetric keys of 24 to 64 bytes; anything
// outside that range is a mistake, not a secret of ours.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// NewSecret returns a fresh endpoint signing secret: "whsec_" followed by
// the standard base64 encoding of 32 random bytes. It is shown to the buyer
// once (on create or rotation) and stored only sealed.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: generating secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// DecodeSecret returns the key bytes of a "whsec_" secret: the HMAC key is
// the decoded bytes, not the string, as Standard Webhooks specifies.
// Errors never quote the secret.
func DecodeSecret(s string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook: secret does not start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// base64.CorruptInputError reports only an offset, never the input.
		return nil, fmt.Errorf("webhook: secret is not valid base64: %w", err)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("webhook: secret decodes to %d bytes, want %d to %d", len(key), minSecretBytes, maxSecretBytes)
	}
	return key, nil
}
