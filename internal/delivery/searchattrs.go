package delivery

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/dealcast/dealcast/internal/searchattr"
)

// RegisterSearchAttributes adds the delivery search attributes to
// namespace; attributes that already exist are fine.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	_, err := searchattr.Register(ctx, c.OperatorService(), namespace, SearchAttributes)
	return err
}
