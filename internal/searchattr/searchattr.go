// Package searchattr registers the custom search attributes a namespace
// needs, so operators can find workflows in the Temporal UI by them.
package searchattr

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
)

// MismatchError says an attribute exists with another type; adding it
// again cannot fix that.
type MismatchError struct {
	Name       string
	Have, Want enumspb.IndexedValueType
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("search attribute %q exists with type %v, not %v", e.Name, e.Have, e.Want)
}

// Register adds those of want that namespace lacks and reports whether it
// asked for any. Another process adding the same attributes at the same
// time is not an error. The server makes new attributes visible a little
// later; callers that need them at once list them again.
func Register(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string, want map[string]enumspb.IndexedValueType) (added bool, err error) {
	resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return false, fmt.Errorf("list search attributes: %w", err)
	}
	have := resp.GetCustomAttributes()
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		got, ok := have[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return false, &MismatchError{Name: name, Have: got, Want: typ}
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	// From here on the attributes may have been added even when the answer
	// says otherwise (a lost reply), so added is true.
	_, err = op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return true, fmt.Errorf("add search attributes: %w", err)
	}
	return true, nil
}
