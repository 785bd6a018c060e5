package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/devtemporal"
	"github.com/dealcast/dealcast/service"
)

// runTemporal runs only the embedded Temporal server, without UI, until
// stopped: a process of its own that chaos can kill and start again on
// the same SQLite file and port.
func runTemporal(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("temporal", flag.ContinueOnError)
	port := fs.Int("port", devtemporal.DefaultFrontendPort, "the frontend port")
	dataDir := fs.String("data-dir", "./.data", "the directory of temporal.db")
	namespace := fs.String("namespace", "default", "the namespace to create on first start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := service.NewLogger(true)
	srv, err := devtemporal.Start(ctx, devtemporal.Options{
		DataDir:          *dataDir,
		FrontendPort:     *port,
		Namespace:        *namespace,
		SearchAttributes: delivery.SearchAttributes,
		Logger:           log.With("component", "temporal-server"),
	})
	if err != nil {
		return fmt.Errorf("embedded temporal: %w", err)
	}
	log.Info("temporal: serving", "address", srv.FrontendAddress(), "data_dir", *dataDir)
	<-ctx.Done()
	return srv.Stop()
}
