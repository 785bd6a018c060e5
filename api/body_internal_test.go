package api

import "testing"

func TestLoneSurrogate(t *testing.T) {
	for body, want := range map[string]bool{
		`{"a":"\ud83d\ude00"}`:          false, // a pair: 😀
		`{"a":"\uD83D\uDE00"}`:          false,
		`{"a":"\u00e9\u2028"}`:          false,
		`{"a":"\\ud800"}`:               false, // an escaped backslash, then text
		`{"a":"\"\\\ud83d\ude00"}`:      false,
		`{"\ud800":1}`:                  true,
		`{"a":"\ud800"}`:                true,
		`{"a":"\udc00"}`:                true,
		`{"a":"\ud800\u0041"}`:          true,
		`{"a":"\ude00\ud83d"}`:          true,
		`{"a":"x\\\ud800"}`:             true,
		`{"a":"\ud83d"} {"b":"\ude00"}`: true,
		`{"a":"\ud83d`:                  true,
	} {
		if got := loneSurrogate([]byte(body)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", body, got, want)
		}
	}
}
