package config

import "testing"

func TestRateLimitFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want float64
		bad  bool
	}{
		{"", DefaultRateLimitRPS, false},
		{"0", 0, false},
		{"2.5", 2.5, false},
		{"1000", 1000, false},
		{"-1", 0, true},
		{"fast", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
	} {
		t.Setenv("DEALCAST_RATE_LIMIT_RPS", tc.env)
		c, err := FromEnv()
		switch {
		case tc.bad && err == nil:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q accepted as %v", tc.env, c.RateLimitRPS)
		case !tc.bad && err != nil:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q: %v", tc.env, err)
		case !tc.bad && c.RateLimitRPS != tc.want:
			t.Errorf("DEALCAST_RATE_LIMIT_RPS=%q gives %v, want %v", tc.env, c.RateLimitRPS, tc.want)
		}
	}
}
