// Package cli is the frame the Dealcast binaries share: signals, the
// collector default, usage and exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// ErrUsage makes Main print the usage and exit with status 2.
var ErrUsage = errors.New("usage")

// Main runs run with the command line's arguments until it returns or the
// process is interrupted (SIGINT, SIGTERM cancel its context), then exits:
// 0 on success, 2 with usage on ErrUsage, 1 on any other error.
func Main(name, usage string, run func(ctx context.Context, args []string) error) {
	UseGCDefault(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
	case errors.Is(err, ErrUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		slog.Error(name+" failed", "err", err)
		os.Exit(1)
	}
}

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
