package devtemporal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func greet(ctx workflow.Context, name string) (string, error) {
	return "hello " + name, nil
}

// held runs until it is signalled "release".
func held(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, "release").Receive(ctx, nil)
	return nil
}

func testFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServerLifecycle is deliberately a single test: starting the embedded
// server is the expensive part. It covers a first start on an empty data
// dir, the namespace, search attributes, a workflow run, the Web UI, and a
// restart on the same SQLite file.
func TestServerLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dataDir := filepath.Join(t.TempDir(), "nested", "data") // created by Start
	opts := Options{
		DataDir:      dataDir,
		FrontendPort: testFreePort(t),
		UIPort:       testFreePort(t),
		Namespace:    "dealcast-test",
		SearchAttributes: map[string]enumspb.IndexedValueType{
			"DealId":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
			"EventType": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		},
		Logger: logger,
	}

	// A file whose schema set-up was cut short is refused, not half-used.
	partial := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(partial, DatabaseFileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE namespaces (id BLOB)`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if s, err := Start(ctx, Options{DataDir: partial, FrontendPort: testFreePort(t)}); err == nil {
		_ = s.Stop()
		t.Error("Start on a partly set-up database succeeded")
	} else if !strings.Contains(err.Error(), "incomplete Temporal schema") {
		t.Errorf("partly set-up database: unexpected error %v", err)
	}

	began := time.Now()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	t.Logf("first start (schema set-up) took %v", time.Since(began))
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Stop()
		}
	}()

	if want := fmt.Sprintf("127.0.0.1:%d", opts.FrontendPort); srv.FrontendAddress() != want {
		t.Errorf("FrontendAddress = %q, want %q", srv.FrontendAddress(), want)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", opts.UIPort); srv.UIURL() != want {
		t.Errorf("UIURL = %q, want %q", srv.UIURL(), want)
	}
	if _, err := os.Stat(filepath.Join(dataDir, DatabaseFileName)); err != nil {
		t.Errorf("database file: %v", err)
	}

	// Starting a second server on the same ports must fail cleanly.
	if s2, err := Start(ctx, Options{DataDir: t.TempDir(), FrontendPort: opts.FrontendPort}); err == nil {
		_ = s2.Stop()
		t.Error("second Start on a busy frontend port succeeded")
	}

	c := dial(t, srv, opts.Namespace)
	checkNamespaceAndAttributes(ctx, t, c, opts)

	w := worker.New(c, "devtemporal-test", worker.Options{})
	w.RegisterWorkflow(greet)
	w.RegisterWorkflow(held)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "greet-1",
		TaskQueue: "devtemporal-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword("DealId").ValueSet("deal-1"),
			temporal.NewSearchAttributeKeyKeyword("EventType").ValueSet("deal.created"),
		),
	}, greet, "dealcast")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out != "hello dealcast" {
		t.Errorf("workflow result = %q", out)
	}
	// The visibility queue is read a few times a second, so a workflow that
	// outlives the first read is listed as running, and once closed it is
	// listed once, as completed.
	heldRun, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "held-1",
		TaskQueue: "devtemporal-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword("DealId").ValueSet("deal-2"),
		),
	}, held)
	if err != nil {
		t.Fatal(err)
	}
	findByDeal(ctx, t, c, opts.Namespace, `DealId = "deal-2" AND ExecutionStatus = "Running"`, "held-1")
	if err := c.SignalWorkflow(ctx, "held-1", "", "release", nil); err != nil {
		t.Fatal(err)
	}
	if err := heldRun.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	findByDeal(ctx, t, c, opts.Namespace, `DealId = "deal-2" AND ExecutionStatus = "Completed"`, "held-1")
	findByDeal(ctx, t, c, opts.Namespace, `DealId = "deal-2"`, "held-1")
	w.Stop()
	// Visibility answers a search attribute query with the trimmed indexes.
	findByDeal(ctx, t, c, opts.Namespace, `DealId = "deal-1" AND ExecutionStatus = "Completed"`, "greet-1")

	// The Web UI serves its pages and its API against this server.
	for _, path := range []string{"/", "/api/v1/namespaces"} {
		resp, err := http.Get(srv.UIURL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
	}

	c.Close()
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped = true
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", srv.UIURL()[len("http://"):], time.Second); err == nil {
		_ = conn.Close()
		t.Error("UI still listening after Stop")
	}

	dbPath := filepath.Join(dataDir, DatabaseFileName)
	checkVisibilityIndexes(t, dbPath)
	// An index dropped before is dropped again at the next start (a file
	// from before the trimming, or one an operator re-indexed).
	execSQLite(t, dbPath, `CREATE INDEX by_int_01 ON executions_visibility (namespace_id, Int01)`)

	// Restart on the same data dir, UI disabled, one more search attribute:
	// the schema exists, the namespace and attributes are kept, and so is
	// the workflow's history.
	opts.UIPort = 0
	opts.SearchAttributes["Attempt"] = enumspb.INDEXED_VALUE_TYPE_INT
	began = time.Now()
	srv2, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(began))
	defer func() { _ = srv2.Stop() }()
	if srv2.UIURL() != "" {
		t.Errorf("UIURL with UI disabled = %q", srv2.UIURL())
	}
	c2 := dial(t, srv2, opts.Namespace)
	defer c2.Close()
	checkNamespaceAndAttributes(ctx, t, c2, opts)
	desc, err := c2.DescribeWorkflowExecution(ctx, "greet-1", run.GetRunID())
	if err != nil {
		t.Fatalf("describe workflow after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("workflow status after restart = %v", st)
	}
	var fetched string
	if err := c2.GetWorkflow(ctx, "greet-1", run.GetRunID()).Get(ctx, &fetched); err != nil || fetched != out {
		t.Errorf("workflow result after restart = %q, %v", fetched, err)
	}
	findByDeal(ctx, t, c2, opts.Namespace, `DealId = "deal-1"`, "greet-1")
	c2.Close()
	if err := srv2.Stop(); err != nil {
		t.Fatalf("stop after restart: %v", err)
	}
	checkVisibilityIndexes(t, dbPath)

	// A search attribute that exists with another type is refused.
	opts.SearchAttributes = map[string]enumspb.IndexedValueType{"DealId": enumspb.INDEXED_VALUE_TYPE_INT}
	if srv3, err := Start(ctx, opts); err == nil {
		_ = srv3.Stop()
		t.Error("Start with a conflicting search attribute type succeeded")
	} else if !strings.Contains(err.Error(), `"DealId" exists with type`) {
		t.Errorf("conflicting search attribute: unexpected error %v", err)
	}
}

func dial(t *testing.T, srv *Server, namespace string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  srv.FrontendAddress(),
		Namespace: namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func checkNamespaceAndAttributes(ctx context.Context, t *testing.T, c client.Client, opts Options) {
	t.Helper()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: opts.Namespace})
	if err != nil {
		t.Fatalf("describe namespace: %v", err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != NamespaceRetention {
		t.Errorf("namespace retention = %v, want %v", got, NamespaceRetention)
	}
	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: opts.Namespace})
	if err != nil {
		t.Fatalf("list search attributes: %v", err)
	}
	for name, typ := range opts.SearchAttributes {
		if got, ok := sas.GetCustomAttributes()[name]; !ok || got != typ {
			t.Errorf("search attribute %s = %v (present %v), want %v", name, got, ok, typ)
		}
	}
}

// findByDeal waits until a visibility query finds exactly the workflow
// wantID (records are written asynchronously).
func findByDeal(ctx context.Context, t *testing.T, c client.Client, namespace, query, wantID string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		if err != nil {
			t.Fatalf("list %q: %v", query, err)
		}
		if ex := resp.GetExecutions(); len(ex) == 1 && ex[0].GetExecution().GetWorkflowId() == wantID {
			return
		} else if len(ex) > 1 {
			t.Fatalf("list %q: %d executions, want 1", query, len(ex))
		}
		if time.Now().After(deadline) {
			t.Fatalf("list %q: %s not found", query, wantID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkVisibilityIndexes asserts that the visibility table has exactly the
// kept indexes and the keyword ones.
func checkVisibilityIndexes(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	kept, keywords := 0, 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		switch {
		case keptVisibilityIndexes[name]:
			kept++
		case strings.HasPrefix(name, "by_keyword_"):
			keywords++
		default:
			t.Errorf("visibility index %s was not dropped", name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if kept != len(keptVisibilityIndexes) || keywords != 10 {
		t.Errorf("visibility indexes: %d of the %d kept, %d keyword ones; want all of them and 10", kept, len(keptVisibilityIndexes), keywords)
	}
}

func execSQLite(t *testing.T, dbPath, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// TestAddressInUse: a port taken between picking and binding is recognised,
// both as the listener's error and as the text the server's start-up
// flattens it into; other failures are not retried.
func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_, err = net.Listen("tcp", l.Addr().String())
	if err == nil {
		t.Fatal("a second listener on a taken port succeeded")
	}
	if !addressInUse(err) {
		t.Errorf("addressInUse(%v) = false", err)
	}
	if flat := errors.New("could not build arguments: " + err.Error()); !addressInUse(flat) {
		t.Errorf("addressInUse(%v) = false", flat)
	}
	if other := errors.New("devtemporal: set up schema: disk full"); addressInUse(other) {
		t.Errorf("addressInUse(%v) = true", other)
	}
}
