package store

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzDecodeCursor feeds decodeCursor what clients may send as ?cursor=:
// it never panics, and either refuses with ErrBadCursor or returns a
// position whose ID is a UUID in its one canonical spelling and which
// survives encoding and decoding again unchanged.
func FuzzDecodeCursor(f *testing.F) {
	id := "0b6f8c3e-4c1e-4d7a-9a55-2f0c0f3b8e11"
	at := time.Date(2026, 11, 26, 5, 0, 0, 123456000, time.UTC)
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		"",
		position{At: at, ID: id}.encode(),
		position{ID: id}.encode(),
		raw(`{"t":"2026-11-26T05:00:00+14:00","i":"` + strings.ToUpper(id) + `"}`),
		raw(`{"i":"urn:uuid:` + id + `"}`),
		raw(`{"i":"{` + id + `}"}`),
		raw(`{"t":"9999-12-31T23:59:59.999999999-23:59","i":"` + id + `"}`),
		raw(`{"t":null,"i":"` + id + `"}`),
		raw(`{"t":"yesterday","i":"` + id + `"}`),
		raw(`{"i":"' OR '1'='1"}`),
		raw(`{"i":1}`),
		raw(`[]`),
		raw(`null`),
		raw(strings.Repeat(" ", 300)),
		base64.StdEncoding.EncodeToString([]byte(`{"i":"` + id + `"}`)),
		"%00", "not a cursor", "====", "\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		p, err := decodeCursor(c)
		if c == "" {
			if p != nil || err != nil {
				t.Fatalf("the empty cursor gave %+v, %v", p, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrBadCursor) || p != nil {
				t.Fatalf("refused with %v and %+v, want ErrBadCursor and nothing", err, p)
			}
			return
		}
		if p == nil {
			t.Fatal("no position and no error")
		}
		u, err := uuid.Parse(p.ID)
		if err != nil || u.String() != p.ID {
			t.Fatalf("position ID %q is not a canonical UUID", p.ID)
		}
		again, err := decodeCursor(p.encode())
		if err != nil {
			t.Fatalf("the cursor of an accepted position is refused: %v", err)
		}
		if again.ID != p.ID || !again.At.Equal(p.At) {
			t.Fatalf("round trip changed %+v into %+v", p, again)
		}
	})
}
