package service

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/auction"
	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/internal/invoice"
	"github.com/dealcast/dealcast/workflows"
)

// DialTemporal connects to the Temporal frontend. A lazy client lets the
// API start and take writes while Temporal is down: events wait in the
// outbox and the sweeper starts them once it is back.
func DialTemporal(cfg config.Config, log *slog.Logger, lazy bool) (client.Client, error) {
	// Workflow starts, workflows and activities join the trace of the
	// request that caused them; SDK metrics go to /metrics.
	tracing, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return nil, err
	}
	opts := client.Options{
		HostPort:     cfg.TemporalAddress,
		Namespace:    cfg.TemporalNamespace,
		Logger:       sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		Interceptors: []interceptor.ClientInterceptor{tracing},
		MetricsHandler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			OnError: func(err error) { log.Warn("temporal sdk metric", "err", err) },
		}),
	}
	// Temporal Cloud and secured clusters: an API key, or a client
	// certificate for mTLS; either turns TLS on.
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
		opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TemporalTLSCert != "" || cfg.TemporalTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		opts.Credentials = client.NewMTLSCredentials(cert)
		opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// gzip spends CPU on both sides of every call to save bandwidth that a
	// nearby frontend does not need: operators can turn it off.
	if cfg.TemporalCompression == config.CompressionNone {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	if lazy {
		return client.NewLazyClient(opts)
	}
	return client.Dial(opts)
}

// NewWorker returns a worker on taskQueue (delivery.TaskQueue outside
// tests) with every workflow and activity the product runs.
func NewWorker(c client.Client, taskQueue string, acts *activities.Activities) worker.Worker {
	w := worker.New(c, taskQueue, worker.Options{
		// Each activity already sends many requests concurrently; a few
		// activities at once keep the receivers and the database busy
		// without letting one slow page starve the rest.
		MaxConcurrentActivityExecutionSize:     64,
		MaxConcurrentWorkflowTaskExecutionSize: 64,
		// On shutdown, running delivery rounds get this long to finish
		// (a round's requests time out after 10 s) before they are
		// cancelled and left to Temporal to retry elsewhere.
		WorkerStopTimeout: 15 * time.Second,
	})
	w.RegisterWorkflowWithOptions(workflows.DeliverEvent, workflow.RegisterOptions{Name: delivery.WorkflowType})
	w.RegisterWorkflowWithOptions(workflows.DeliverBatch, workflow.RegisterOptions{Name: delivery.BatchWorkflowType})
	w.RegisterWorkflowWithOptions(workflows.InvoiceDue, workflow.RegisterOptions{Name: invoice.WorkflowType})
	w.RegisterWorkflowWithOptions(workflows.AuctionClock, workflow.RegisterOptions{Name: auction.WorkflowType})
	w.RegisterActivity(acts)
	return w
}
