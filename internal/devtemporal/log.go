package devtemporal

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"

	"github.com/dealcast/dealcast/internal/logfilter"
)

// quietLogger returns l (or a discarding logger when nil) restricted to
// records at level min or above.
func quietLogger(l *slog.Logger, min slog.Level) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(logfilter.AtLeast(l.Handler(), min))
}

// serverLogger adapts a *slog.Logger to the Temporal server's log.Logger.
// Once muted (when Stop begins) it drops everything: shutting down makes the
// server's internal clients log connection errors, and some system workers
// the server never stops keep logging failed polls afterwards.
type serverLogger struct {
	sl    *slog.Logger
	muted *atomic.Bool
}

var (
	_ log.Logger      = serverLogger{}
	_ log.WithLogger  = serverLogger{}
	_ log.SLogWrapper = serverLogger{}
)

func (s serverLogger) Debug(msg string, tags ...tag.Tag) { s.log(slog.LevelDebug, msg, tags) }
func (s serverLogger) Info(msg string, tags ...tag.Tag)  { s.log(slog.LevelInfo, msg, tags) }
func (s serverLogger) Warn(msg string, tags ...tag.Tag)  { s.log(slog.LevelWarn, msg, tags) }
func (s serverLogger) Error(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }

// DPanic, Panic and Fatal are logged as errors: an embedded dev server must
// not take the whole dealcast process down.
func (s serverLogger) DPanic(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }
func (s serverLogger) Panic(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }
func (s serverLogger) Fatal(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }

func (s serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{sl: slog.New(s.sl.Handler().WithAttrs(tagsToAttrs(tags))), muted: s.muted}
}

// SLog lets the server use the (level-filtered, mutable) slog logger directly
// where it wants one.
func (s serverLogger) SLog() *slog.Logger {
	return slog.New(logfilter.Mutable(s.sl.Handler(), s.muted))
}

func (s serverLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if s.muted.Load() || !s.sl.Enabled(ctx, level) {
		return
	}
	s.sl.LogAttrs(ctx, level, msg, tagsToAttrs(tags)...)
}

func tagsToAttrs(tags []tag.Tag) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(tags))
	for _, t := range tags {
		if t == nil {
			continue
		}
		attrs = append(attrs, slog.Any(t.Key(), t.Value()))
	}
	return attrs
}
