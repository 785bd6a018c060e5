package logfilter

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

func TestAtLeastAndMutable(t *testing.T) {
	var buf bytes.Buffer
	var muted atomic.Bool
	log := slog.New(Mutable(AtLeast(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelWarn), &muted)).With("c", "x")
	log.Info("quiet")
	log.Warn("loud")
	muted.Store(true)
	log.Error("after mute")
	out := buf.String()
	if strings.Contains(out, "quiet") || !strings.Contains(out, "loud") || !strings.Contains(out, "c=x") || strings.Contains(out, "after mute") {
		t.Fatalf("unexpected output: %q", out)
	}
}
