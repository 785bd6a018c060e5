package api

import (
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
)

// canonicalID returns a UUID in its one lowercase hyphenated spelling
// (the API accepts others, such as uppercase or urn:uuid:), or id itself
// when it is not a UUID.
func canonicalID(id string) string {
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return id
}

// checkText refuses text that no column can hold (NUL, invalid UTF-8) or
// that says nothing (blank).
func checkText(location, s string) error {
	msg := ""
	switch {
	case !utf8.ValidString(s):
		msg = "must be valid UTF-8"
	case strings.ContainsRune(s, 0):
		msg = "must not contain NUL characters"
	case strings.TrimSpace(s) == "":
		msg = "must not be blank"
	default:
		return nil
	}
	return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: location, Message: msg})
}
