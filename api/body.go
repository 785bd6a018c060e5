package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// bodyError is a request body the JSON decoder refused, said for people:
// encoding/json's own text names Go types and struct fields
// ("cannot unmarshal number 1e3 into Go struct field plain.total_price of
// type int64"), and huma would echo the whole body with it.
type bodyError struct {
	Location string `json:"location"`
	Message  string `json:"message"`
	Value    any    `json:"value,omitempty"`
	cause    error
}

// bodyErrorMark starts the text of a bodyError. huma keeps only an
// unmarshal error's text, so the location and value travel in it, and
// unpackBodyError, run on every problem, takes them out again.
const bodyErrorMark = "\x00body-error\x00"

func (e *bodyError) Error() string {
	b, err := json.Marshal(e)
	if err != nil {
		return e.Message
	}
	return bodyErrorMark + string(b)
}

func (e *bodyError) Unwrap() error { return e.cause }

// unpackBodyError puts a bodyError's location, message and value back in
// the error detail huma made of its text.
func unpackBodyError(d *huma.ErrorDetail) {
	raw, ok := strings.CutPrefix(d.Message, bodyErrorMark)
	if !ok {
		return
	}
	var be bodyError
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&be) != nil {
		d.Message, d.Value = "the request body could not be decoded", nil
		return
	}
	d.Message, d.Location, d.Value = be.Message, be.Location, be.Value
}

// explainBodyError turns an error decoding data into a bodyError.
func explainBodyError(data []byte, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, errNotUTF8), errors.Is(err, errLoneSurrogate):
		return &bodyError{Location: "body", Message: err.Error(), cause: err}
	case errors.As(err, &syn):
		if syn.Error() == "unexpected end of JSON input" {
			return &bodyError{Location: "body", Message: "the request body is not valid JSON: it ends before the JSON value does", cause: err}
		}
		return &bodyError{Location: "body", cause: err,
			Message: fmt.Sprintf("the request body is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)}
	case errors.As(err, &typ):
		return typeError(data, typ)
	case strings.HasPrefix(err.Error(), "json:"):
		return &bodyError{Location: "body", Message: "the request body does not match the operation's schema", cause: err}
	}
	// The deal package's own decoding errors are already written for people.
	return &bodyError{Location: "body", Message: err.Error(), cause: err}
}

// typeError says which member had the wrong type and what it must be.
func typeError(data []byte, e *json.UnmarshalTypeError) *bodyError {
	var path []string
	if e.Field != "" {
		path = strings.Split(e.Field, ".")
	}
	loc, name := "body", "the request body"
	if len(path) > 0 {
		var b strings.Builder
		for i, s := range path {
			if _, err := strconv.Atoi(s); err == nil {
				b.WriteString("[" + s + "]")
			} else {
				if i > 0 {
					b.WriteString(".")
				}
				b.WriteString(s)
			}
		}
		name = b.String()
		loc = "body." + name
	}
	return &bodyError{Location: loc, Message: name + " " + mustBe(e.Type, e.Value, path), Value: valueAt(data, path), cause: e}
}

// mustBe describes, in JSON's terms, the values a Go type accepts; got
// is encoding/json's description of the value it was given.
func mustBe(t reflect.Type, got string, path []string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "has the wrong type"
	}
	literal, isNumber := strings.CutPrefix(got, "number ")
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isNumber && !strings.ContainsAny(literal, ".eE") {
			return "is out of range"
		}
		if len(path) > 0 && isMoney(path[len(path)-1]) {
			return "must be an integer (minor units), written without a fraction or exponent"
		}
		return "must be an integer, written without a fraction or exponent"
	case reflect.Float32, reflect.Float64:
		if isNumber {
			return "is a number too large to represent"
		}
		return "must be a number"
	case reflect.String:
		return "must be a string"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Struct, reflect.Map:
		return "must be a JSON object"
	case reflect.Slice, reflect.Array:
		return "must be a JSON array"
	}
	return "has the wrong type"
}

// isMoney tells the members that hold an amount of money in minor units.
func isMoney(member string) bool {
	return member == "price" || member == "amount" || member == "min_increment" || strings.HasSuffix(member, "_price")
}

// valueAt is the value at path in data, for echoing; nil if there is none.
func valueAt(data []byte, path []string) any {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	for _, s := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return echoable(v)
}

// loneSurrogate tells whether a JSON text's strings hold a \u escape of a
// UTF-16 surrogate that is not the first half of a pair followed by its
// second half.
func loneSurrogate(data []byte) bool {
	if !bytes.Contains(data, []byte(`\u`)) {
		return false
	}
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(data):
			if data[i+1] != 'u' {
				i++ // the escaped character, which may be a quote
				continue
			}
			r, ok := hex4(data, i+2)
			switch {
			case !ok || r < 0xd800 || r > 0xdfff:
			case r >= 0xdc00:
				return true
			default:
				low, ok := hex4(data, i+8)
				if !ok || data[i+6] != '\\' || data[i+7] != 'u' || low < 0xdc00 || low > 0xdfff {
					return true
				}
				i += 6
			}
			i += 5
		}
	}
	return false
}

// hex4 reads the four hex digits at data[at:], if there are four.
func hex4(data []byte, at int) (rune, bool) {
	if at < 0 || at+4 > len(data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[at:at+4]), 16, 16)
	return rune(n), err == nil
}
