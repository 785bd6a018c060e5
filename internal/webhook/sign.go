package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// SignatureVersion is the Standard Webhooks scheme tag for HMAC-SHA256.
const SignatureVersion = "v1"

// sigLen is the length of one "v1,<base64 of a SHA-256 MAC>" entry.
var sigLen = len(SignatureVersion) + 1 + base64.StdEncoding.EncodedLen(sha256.Size)

// Sign returns the value of the webhook-signature header: for each secret,
// "v1," followed by the base64 HMAC-SHA256 of "{msgID}.{unix seconds}.{body}"
// keyed by the secret's decoded bytes, separated by single spaces. During
// a rotation both the new and the old secret are passed, so receivers
// holding either one accept the delivery. With no secrets it returns "".
//
// ts must be the timestamp sent in webhook-timestamp; receivers reject
// deliveries whose timestamp is far from their clock, so it should be the
// time of the attempt, not of the event.
func Sign(msgID string, ts time.Time, body []byte, secrets ...[]byte) string {
	if len(secrets) == 0 {
		return ""
	}
	prefix := signedPrefix(msgID, strconv.FormatInt(ts.Unix(), 10))
	var b strings.Builder
	b.Grow(len(secrets)*(sigLen+1) - 1)
	var sum [sha256.Size]byte
	var enc [44]byte // base64.StdEncoding.EncodedLen(sha256.Size)
	for i, key := range secrets {
		base64.StdEncoding.Encode(enc[:], mac(sum[:0], key, prefix, body))
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(SignatureVersion)
		b.WriteByte(',')
		b.Write(enc[:])
	}
	return b.String()
}

// Verify reports whether signature, the value of a webhook-signature
// header, holds a "v1," entry that is the HMAC-SHA256 under key of
// "{msgID}.{timestamp}.{body}", as Sign makes it. timestamp is the
// webhook-timestamp header exactly as received. Entries of other versions
// are skipped. Verify checks the signature only: a receiver should also
// refuse a timestamp far from its own clock, so that a recorded delivery
// cannot be replayed later.
func Verify(msgID, timestamp string, body []byte, signature string, key []byte) bool {
	var sum [sha256.Size]byte
	want := mac(sum[:0], key, signedPrefix(msgID, timestamp), body)
	for _, entry := range strings.Fields(signature) {
		encoded, ok := strings.CutPrefix(entry, SignatureVersion+",")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// signedPrefix is the part of the signed message before the body.
func signedPrefix(msgID, timestamp string) []byte {
	return []byte(msgID + "." + timestamp + ".")
}

// mac appends HMAC-SHA256(key, prefix || body) to dst.
func mac(dst, key, prefix, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(prefix)
	m.Write(body)
	return m.Sum(dst)
}
