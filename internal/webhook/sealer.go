package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length of a sealing key: AES-256.
const KeySize = 32

// currentKeyVersion is written in front of every sealed value. Today there
// is one key; the byte lets a later release hold old keys by version and
// re-seal lazily, without guessing which key a stored value needs.
const currentKeyVersion byte = 1

// Sealer encrypts endpoint secrets for storage with AES-256-GCM, so a
// database dump alone does not let anyone forge deliveries.
//
// A sealed value is: key version (1 byte) || nonce (12 bytes) ||
// ciphertext || GCM tag (16 bytes). The version byte is authenticated as
// additional data, so it cannot be altered to steer decryption.
//
// A Sealer is safe for concurrent use. It keeps no copy of the raw key,
// and its String, GoString and LogValue never show key material.
type Sealer struct {
	version byte
	aead    cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("webhook: sealing key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhook: sealing key: %w", err)
	}
	// Random 96-bit nonces, generated and prepended by the standard
	// library: no nonce bookkeeping of our own to get wrong. At the rate
	// endpoints are created or rotated, the 2^32 messages-per-key bound
	// for random nonces is far away.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("webhook: sealing key: %w", err)
	}
	return &Sealer{version: currentKeyVersion, aead: aead}, nil
}

// ParseKey decodes a sealing key given as standard base64 of 32 bytes, the
// form of the DEALCAST_SECRET_KEY environment variable (for example the
// output of `openssl rand -base64 32`). Errors never quote the input.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("webhook: sealing key is not valid base64: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("webhook: sealing key decodes to %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

// Seal encrypts plaintext. Sealing the same plaintext twice gives
// different results.
func (s *Sealer) Seal(plaintext string) ([]byte, error) {
	out := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	out[0] = s.version
	// GCM forbids dst and additional data overlapping, hence the separate
	// one-byte slice.
	return s.aead.Seal(out, nil, []byte(plaintext), []byte{s.version}), nil
}

// errOpen is deliberately vague: telling a wrong key from tampering would
// help nobody but an attacker.
var errOpen = errors.New("webhook: cannot open sealed secret: wrong key or corrupted data")

// Open decrypts a value made by Seal with the same key.
func (s *Sealer) Open(sealed []byte) (string, error) {
	if len(sealed) < 1+s.aead.Overhead() {
		return "", errOpen
	}
	if sealed[0] != s.version {
		return "", fmt.Errorf("webhook: sealed with key version %d, this key is version %d", sealed[0], s.version)
	}
	plain, err := s.aead.Open(nil, nil, sealed[1:], sealed[:1])
	if err != nil {
		return "", errOpen
	}
	return string(plain), nil
}

// String describes the Sealer without its key. The description methods
// have value receivers so that a dereferenced Sealer is covered too.
func (s Sealer) String() string {
	return fmt.Sprintf("webhook.Sealer{AES-256-GCM, key version %d}", s.version)
}

// GoString keeps %#v from printing the cipher state.
func (s Sealer) GoString() string { return s.String() }

// LogValue lets a Sealer be logged with slog without its key.
func (s Sealer) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("algorithm", "AES-256-GCM"),
		slog.Int("key_version", int(s.version)),
	)
}
