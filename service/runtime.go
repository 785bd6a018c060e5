package service

import (
	"log/slog"
	"os"
)

// NewLogger logs JSON to stderr, or text for a person at a terminal.
func NewLogger(text bool) *slog.Logger {
	if text {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}
