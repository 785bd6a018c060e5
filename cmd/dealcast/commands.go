package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/dealcast/dealcast/api"
	"github.com/dealcast/dealcast/internal/account"
	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/database"
	"github.com/dealcast/dealcast/service"
)

// runProcess runs one production role until ctx ends or a part of it fails.
func runProcess(ctx context.Context, name string, args []string, roles service.Roles) error {
	if err := flag.NewFlagSet(name, flag.ContinueOnError).Parse(args); err != nil {
		return err
	}
	log := service.NewLogger(false)
	slog.SetDefault(log)
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	if roles.API {
		if err := cfg.RequireKeys(); err != nil {
			return err
		}
	}
	p, err := service.Open(ctx, cfg, log, "dealcast-"+name, roles)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(ctx)
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	create := fs.Bool("create-database", false, "create the database first if it does not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	results, err := database.Prepare(ctx, cfg.DatabaseURL, *create)
	for _, r := range results {
		fmt.Printf("applied %s (%s)\n", r.Source.Path, r.Duration.Round(time.Millisecond))
	}
	if err == nil && len(results) == 0 {
		fmt.Println("database is up to date")
	}
	return err
}

func runToken(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	role := fs.String("role", "", "seller, buyer or operator")
	sub := fs.String("sub", "", "account ID (any identifier for an operator)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	secret, err := cfg.TokenSecret()
	if err != nil {
		return err
	}
	switch account.Role(*role) {
	case account.RoleSeller, account.RoleBuyer, account.RoleOperator:
	default:
		return fmt.Errorf("--role must be seller, buyer or operator")
	}
	if *sub == "" || *ttl <= 0 {
		return fmt.Errorf("--sub is required and --ttl must be positive")
	}
	tok, err := auth.Mint(secret, account.Role(*role), *sub, *ttl, auth.MintOptions{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func runOpenAPI(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("openapi", flag.ContinueOnError)
	version := fs.String("version", "3.1", "3.1 or 3.0")
	asYAML := fs.Bool("yaml", false, "YAML instead of JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, a := api.New(api.Deps{})
	b, err := specBytes(a.OpenAPI(), *version, *asYAML)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

func specBytes(o *huma.OpenAPI, version string, asYAML bool) ([]byte, error) {
	switch {
	case version == "3.1" && asYAML:
		return o.YAML()
	case version == "3.1":
		return o.MarshalJSON()
	case version == "3.0" && asYAML:
		return o.DowngradeYAML()
	case version == "3.0":
		return o.Downgrade()
	}
	return nil, fmt.Errorf("--version must be 3.1 or 3.0")
}
