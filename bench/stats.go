package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Sample collects durations from many goroutines.
type Sample struct {
	mu sync.Mutex
	ms []float64
}

// Add records one duration.
func (s *Sample) Add(d time.Duration) {
	v := float64(d.Nanoseconds()) / 1e6
	s.mu.Lock()
	s.ms = append(s.ms, v)
	s.mu.Unlock()
}

// AddAll records a batch of durations in milliseconds.
func (s *Sample) AddAll(ms []float64) {
	s.mu.Lock()
	s.ms = append(s.ms, ms...)
	s.mu.Unlock()
}

// Summary is the distribution of a sample, in milliseconds.
type Summary struct {
	Count  int
	P50    float64
	P90    float64
	P99    float64
	Max    float64
	Mean   float64
	sorted []float64
}

// Summary sorts a copy of the sample and summarises it.
func (s *Sample) Summary() Summary {
	s.mu.Lock()
	v := slices.Clone(s.ms)
	s.mu.Unlock()
	return summarise(v)
}

func summarise(v []float64) Summary {
	slices.Sort(v)
	out := Summary{Count: len(v), sorted: v}
	if len(v) == 0 {
		return out
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	out.Mean = sum / float64(len(v))
	out.P50, out.P90, out.P99 = percentile(v, 50), percentile(v, 90), percentile(v, 99)
	out.Max = v[len(v)-1]
	return out
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// round keeps three decimals: enough for milliseconds and ratios.
func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// perSecond is n over d, zero for no time.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
