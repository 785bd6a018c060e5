package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/dealcast/dealcast/activities"
	"github.com/dealcast/dealcast/internal/invoice"
)

// runInvoice runs InvoiceDue on an invoice due in 14 days as read by
// ReadInvoiceDue, with signal sent after signalAfter when positive, and
// returns its result and how often it marked the invoice overdue.
func runInvoice(t *testing.T, open bool, signalAfter time.Duration) (bool, int) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	due := env.Now().Add(14 * 24 * time.Hour)
	env.OnActivity(readInvoiceDue, mock.Anything, "inv").Return(activities.InvoiceDue{Open: open, DueAt: due}, nil)
	marks := 0
	env.OnActivity(markInvoiceOverdue, mock.Anything, "inv").Return(func(context.Context, string) (bool, error) {
		marks++
		return true, nil
	})
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) {
		if d != 14*24*time.Hour {
			t.Errorf("a timer of %v, want one to the due date", d)
		}
	})
	if signalAfter > 0 {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(invoice.SettledSignal, string(invoice.EventPaid)) }, signalAfter)
	}
	env.ExecuteWorkflow(InvoiceDue, invoice.WorkflowInput{InvoiceID: "inv"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var marked bool
	if err := env.GetWorkflowResult(&marked); err != nil {
		t.Fatal(err)
	}
	return marked, marks
}

func TestInvoiceDueMarksAnOpenInvoiceAtItsDueDate(t *testing.T) {
	if marked, marks := runInvoice(t, true, 0); !marked || marks != 1 {
		t.Fatalf("marked %v after %d calls, want true after 1", marked, marks)
	}
}

func TestInvoiceDueEndsWhenSettled(t *testing.T) {
	if marked, marks := runInvoice(t, true, time.Hour); marked || marks != 0 {
		t.Fatalf("marked %v after %d calls, want neither", marked, marks)
	}
}

func TestInvoiceDueEndsAtOnceForASettledInvoice(t *testing.T) {
	if marked, marks := runInvoice(t, false, 0); marked || marks != 0 {
		t.Fatalf("marked %v after %d calls, want neither", marked, marks)
	}
}
