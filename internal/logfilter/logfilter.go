// Package logfilter holds slog handlers that keep noisy components quiet:
// the embedded Temporal server logs a great deal that a developer running
// Dealcast does not need.
package logfilter

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// AtLeast passes on only records at level min or above.
func AtLeast(next slog.Handler, min slog.Level) slog.Handler { return atLeast{min: min, next: next} }

type atLeast struct {
	min  slog.Level
	next slog.Handler
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h atLeast) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.min {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{min: h.min, next: h.next.WithAttrs(attrs)}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{min: h.min, next: h.next.WithGroup(name)}
}

// Mutable passes records on until muted is set, then drops them all: a
// server shutting down logs every connection it loses.
func Mutable(next slog.Handler, muted *atomic.Bool) slog.Handler {
	return mutable{muted: muted, next: next}
}

type mutable struct {
	muted *atomic.Bool
	next  slog.Handler
}

func (h mutable) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.muted.Load() && h.next.Enabled(ctx, l)
}

func (h mutable) Handle(ctx context.Context, r slog.Record) error {
	if h.muted.Load() {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h mutable) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mutable{muted: h.muted, next: h.next.WithAttrs(attrs)}
}

func (h mutable) WithGroup(name string) slog.Handler {
	return mutable{muted: h.muted, next: h.next.WithGroup(name)}
}
