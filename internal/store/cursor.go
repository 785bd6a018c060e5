package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
)

// ErrBadCursor means a cursor was not one this service issued.
var ErrBadCursor = errors.New("cursor is malformed")

// position is a point in a keyset-ordered list: the sort key and the ID
// that breaks ties. It travels to clients as an opaque cursor.
type position struct {
	At time.Time `json:"t,omitzero"`
	ID string    `json:"i"`
}

func (p position) encode() string {
	b, _ := json.Marshal(p) // a struct of a time and a string always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor; the empty cursor is the start of the list.
func decodeCursor(c string) (*position, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 256 {
		return nil, ErrBadCursor
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, ErrBadCursor
	}
	id, err := uuid.Parse(p.ID)
	if err != nil {
		return nil, ErrBadCursor
	}
	p.ID = id.String()
	return &p, nil
}

// Page is one page of a list and the cursor of the next, empty at the end.
type Page[T any] struct {
	Items []T
	Next  string
}

// pageOf trims rows fetched with limit+1 to limit and sets the next cursor
// from the last kept row.
func pageOf[T any](rows []T, limit int, pos func(T) position) Page[T] {
	if len(rows) <= limit {
		return Page[T]{Items: rows}
	}
	rows = rows[:limit]
	return Page[T]{Items: rows, Next: pos(rows[limit-1]).encode()}
}

// zeroUUID is the cursor before every UUID, for lists in ID order.
const zeroUUID = "00000000-0000-0000-0000-000000000000"

// maxUUID sorts after every UUID: an upper bound that bounds nothing.
const maxUUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
