package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/workflows"
)

// NewWorker returns a worker for delivery workflows and activities on
// taskQueue (workflows.TaskQueue outside tests).
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
	w.RegisterWorkflow(workflows.DeliverEvent)
	w.RegisterActivity(acts)
	return w
}

// RegisterSearchAttributes adds the delivery search attributes to
// namespace; attributes that already exist are fine.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	existing, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := SearchAttributesMissing(existing.GetCustomAttributes())
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil && !strings.Contains(strings.ToLower(err.Error()), "already") {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

// SearchAttributesMissing returns the delivery attributes absent from existing.
func SearchAttributesMissing[V any](existing map[string]V) map[string]enumspb.IndexedValueType {
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes {
		if _, ok := existing[name]; !ok {
			missing[name] = typ
		}
	}
	return missing
}
