package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignatureVersion is the Standard Webhooks scheme tag for HMAC-SHA256.
const SignatureVersion = "v1"

// sigLen is the length of one "v1,<base64 of a SHA-256 MAC>" entry.
var sigLen = len(SignatureVersion) + 1 + base64.StdEncoding.EncodedLen(sha256.Size)

// macState is the scratch space for one HMAC-SHA256 computation. Sign is
// called for every attempt of every delivery, and crypto/hmac.New
// allocates two hash states and two pad buffers per key. Because every
// endpoint has its own key a keyed hmac.Hash cannot be reused, so Sign
// pools unkeyed SHA-256 states and applies the RFC 2104 construction
// itself: H((K ^ opad) || H((K ^ ipad) || message)). The tests check it
// against crypto/hmac for keys of every length around the block size.
type macState struct {
	inner, outer hash.Hash
	pad          [sha256.BlockSize]byte
	sum          [sha256.Size]byte
	// prefix holds "{id}.{timestamp}." so the message is written with
	// two Write calls and no per-call allocation.
	prefix []byte
}

var macPool = sync.Pool{New: func() any {
	return &macState{inner: sha256.New(), outer: sha256.New(), prefix: make([]byte, 0, 96)}
}}

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
	st := macPool.Get().(*macState)
	defer macPool.Put(st)

	st.prefix = append(st.prefix[:0], msgID...)
	st.prefix = append(st.prefix, '.')
	st.prefix = strconv.AppendInt(st.prefix, ts.Unix(), 10)
	st.prefix = append(st.prefix, '.')

	var b strings.Builder
	b.Grow(len(secrets)*(sigLen+1) - 1)
	var enc [44]byte // base64.StdEncoding.EncodedLen(sha256.Size)
	for i, key := range secrets {
		mac := st.mac(key, body)
		base64.StdEncoding.Encode(enc[:], mac)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(SignatureVersion)
		b.WriteByte(',')
		b.Write(enc[:])
	}
	return b.String()
}

// mac computes HMAC-SHA256(key, st.prefix || body) into st.sum.
func (st *macState) mac(key, body []byte) []byte {
	var hashed [sha256.Size]byte
	if len(key) > sha256.BlockSize {
		hashed = sha256.Sum256(key)
		key = hashed[:]
	}

	st.setPad(key, 0x36)
	st.inner.Reset()
	st.inner.Write(st.pad[:])
	st.inner.Write(st.prefix)
	st.inner.Write(body)
	inner := st.inner.Sum(st.sum[:0])

	st.setPad(key, 0x5c)
	st.outer.Reset()
	st.outer.Write(st.pad[:])
	st.outer.Write(inner)
	out := st.outer.Sum(st.sum[:0])

	// Leave no key-derived bytes in pooled memory longer than needed.
	clear(st.pad[:])
	return out
}

// setPad fills st.pad with key (zero-padded to the block size) XOR b.
func (st *macState) setPad(key []byte, b byte) {
	for i := range st.pad {
		st.pad[i] = b
	}
	for i, k := range key {
		st.pad[i] ^= k
	}
}
