package workflows

import (
	"hash/fnv"
	"strconv"
	"time"
)

// retryDelays is the wait before each retry round: exponential from
// seconds to hours, then every 4 hours, about 28 h in all (at least 24 h as
// the contract promises, jitter included, since jitter only lengthens).
var retryDelays = []time.Duration{
	2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour,
}

// Retries is how many retry rounds follow the first attempt.
var Retries = len(retryDelays)

// RetryDelay is the wait before retry round n (1-based) of an event, with
// up to 20 % jitter so that many events failing together do not retry in
// lockstep. The jitter is a hash of the event ID and n, not a random
// draw, so the workflow stays deterministic on replay.
func RetryDelay(eventID string, n int) time.Duration {
	if n < 1 || n > len(retryDelays) {
		return 0
	}
	base := retryDelays[n-1]
	h := fnv.New32a()
	_, _ = h.Write([]byte(eventID))
	_, _ = h.Write([]byte(strconv.Itoa(n)))
	frac := float64(h.Sum32()%1000) / 1000 // [0, 1)
	return base + time.Duration(float64(base)*0.2*frac)
}

// TotalRetryWindow is the shortest time the schedule keeps retrying.
func TotalRetryWindow() time.Duration {
	var sum time.Duration
	for _, d := range retryDelays {
		sum += d
	}
	return sum
}
