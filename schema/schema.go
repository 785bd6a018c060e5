// Package schema holds the database migrations, embedded so the binary carries
// them. Every statement is written to run unchanged on PostgreSQL (development,
// CI) and CockroachDB (production): no sequences as hot keys, no LISTEN/NOTIFY,
// no advisory locks.
package schema

import "embed"

// Migrations are the numbered goose migrations, applied in order.
//
//go:embed migrations/*.sql
var Migrations embed.FS
