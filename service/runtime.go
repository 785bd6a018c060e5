package service

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the collector's target when GOGC is not set: the heap
// may grow to five times what is live between collections instead of
// twice. Delivery allocates fast and keeps little (requests, protobuf
// messages, rows), so collecting less often saves CPU for some memory
// (docs/performance.md). GOMEMLIMIT still bounds the heap: the container
// manifests set it below their memory limit.
const DefaultGCPercent = 400

// UseGCDefault applies DefaultGCPercent unless the environment sets GOGC,
// which the runtime has already read; it reports whether it did.
func UseGCDefault(lookup func(string) (string, bool)) bool {
	if _, set := lookup("GOGC"); set {
		return false
	}
	debug.SetGCPercent(DefaultGCPercent)
	return true
}

// NewLogger logs JSON to stderr, or text for a person at a terminal.
func NewLogger(text bool) *slog.Logger {
	if text {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}
