// Package database opens the connection pool, creates the development
// database when it is missing and applies the embedded migrations.
package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/dealcast/dealcast/schema"
)

// Open connects a pool to url and checks that the database answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	// A span per query, in the trace of the request or activity that ran it.
	cfg.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTrimSQLInSpanName())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// Ensure creates the database named in url if it does not exist, by
// connecting to the server's maintenance database. Used by dev and tests.
func Ensure(ctx context.Context, url string) error {
	conn, name, err := connectAdmin(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to server: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

// Drop removes the database named in url; tests use it to clean up.
func Drop(ctx context.Context, url string) error {
	conn, name, err := connectAdmin(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// connectAdmin connects to the maintenance database of url's server and
// returns the name of url's own database. The URL is read as a pool URL so
// pool settings such as pool_max_conns are not sent to the server.
func connectAdmin(ctx context.Context, url string) (*pgx.Conn, string, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	admin := cfg.ConnConfig.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return nil, "", err
	}
	return conn, cfg.ConnConfig.Database, nil
}

// Migrate applies every pending migration.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]*goose.MigrationResult, error) {
	migrations, err := fs.Sub(schema.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations)
	if err != nil {
		return nil, err
	}
	return p.Up(ctx)
}

// Prepare migrates the database at url, creating it first when create is
// set and it does not exist.
func Prepare(ctx context.Context, url string, create bool) ([]*goose.MigrationResult, error) {
	if create {
		if err := Ensure(ctx, url); err != nil {
			return nil, fmt.Errorf("create database: %w", err)
		}
	}
	pool, err := Open(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	results, err := Migrate(ctx, pool)
	if err != nil {
		return results, fmt.Errorf("migrate: %w", err)
	}
	return results, nil
}
