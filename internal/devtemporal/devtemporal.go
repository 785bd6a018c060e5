// Package devtemporal runs a real Temporal server, persisted to a SQLite file,
// inside the current process, optionally with the Temporal Web UI. It backs
// `dealcast dev` when no TEMPORAL_ADDRESS is given.
//
// It follows the shape of the Temporal CLI's `temporal server start-dev`: all
// four services (frontend, history, matching, worker) in one process with
// static membership (no ringpop gossip), SQLite persistence with the schema
// created on first start, and namespaces written straight into the database
// before the server starts.
package devtemporal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/primitives/timestamp"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	_ "modernc.org/sqlite" // "sqlite" database/sql driver, used to inspect an existing file

	"github.com/dealcast/dealcast/internal/searchattr"
)

const (
	defaultHost      = "127.0.0.1"
	defaultNamespace = "default"

	// DefaultFrontendPort is the frontend port used when Options.FrontendPort is 0.
	DefaultFrontendPort = 7233
	// AnyFreePort as Options.FrontendPort lets Start pick a free port (and
	// pick again if another process takes it before the server binds it).
	AnyFreePort = -1
	// DefaultUIPort is the Web UI port `dealcast dev` uses. Options.UIPort has
	// no implicit default: 0 disables the UI.
	DefaultUIPort = 8233

	// DatabaseFileName is the SQLite file created inside Options.DataDir.
	DatabaseFileName = "temporal.db"

	// NamespaceRetention is the workflow history retention of the namespace
	// created on first start (an existing namespace keeps its own).
	NamespaceRetention = 72 * time.Hour

	clusterName = "active"

	// defaultStartTimeout bounds Start when ctx has no deadline of its own.
	defaultStartTimeout = 2 * time.Minute

	// schemaCompleteMarker is the last object the SQLite schema scripts create;
	// a file that has tables but not this one was only partly set up.
	schemaCompleteMarker = "executions_visibility_au"

	// namespaceRefresh is how often the server's services reread namespaces.
	namespaceRefresh = 2 * time.Second
)

// Options configure Start. Zero values take the documented defaults.
type Options struct {
	// DataDir holds the SQLite file (DataDir/temporal.db); created if missing.
	// Required.
	DataDir string
	// Host is the IP address the frontend and the UI listen on ("localhost"
	// means 127.0.0.1). Default "127.0.0.1".
	Host string
	// FrontendPort is the frontend gRPC port. Default DefaultFrontendPort
	// (7233); AnyFreePort for any free one (FrontendAddress tells which).
	FrontendPort int
	// UIPort is the Web UI HTTP port (DefaultUIPort is 8233); 0 or negative
	// disables the UI.
	UIPort int
	// Namespace is created on first start (retention NamespaceRetention).
	// Default "default".
	Namespace string
	// SearchAttributes are custom search attributes registered on Namespace,
	// e.g. "DealId": INDEXED_VALUE_TYPE_KEYWORD.
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's warnings and errors (nothing below warn).
	// Nil discards them.
	Logger *slog.Logger
}

// Server is a running embedded Temporal server.
type Server struct {
	server    temporal.Server
	ui        *uiserver.Server
	frontend  string
	uiURL     string
	namespace string
	dbPath    string
	logger    *slog.Logger
	muted     *atomic.Bool // silences the server's logger once Stop begins

	stopOnce sync.Once
	stopErr  error
	uiDone   chan struct{}
}

// Start runs the server and returns once the frontend accepts requests, the
// namespace exists and the search attributes are registered. ctx bounds the
// start-up only; use Stop to shut the server down.
func Start(ctx context.Context, o Options) (*Server, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	logger := quietLogger(o.Logger, slog.LevelWarn)

	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: data dir: %w", err)
	}
	if strings.ContainsAny(dataDir, "?#") {
		return nil, fmt.Errorf("devtemporal: data dir %q: '?' and '#' are not allowed in the path", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("devtemporal: create data dir: %w", err)
	}
	dbPath := filepath.Join(dataDir, DatabaseFileName)

	dialHost := o.Host
	if ip := net.ParseIP(dialHost); ip != nil && ip.IsUnspecified() {
		dialHost = defaultHost
	}

	// Fail early and cleanly on a busy port rather than half-way through
	// the server's start-up (or, for the UI, with the os.Exit its server
	// does when it cannot listen).
	if o.FrontendPort != AnyFreePort {
		if err := checkPortFree(o.Host, o.FrontendPort); err != nil {
			return nil, fmt.Errorf("devtemporal: frontend port: %w", err)
		}
	}
	if o.UIPort > 0 {
		if err := checkPortFree(o.Host, o.UIPort); err != nil {
			return nil, fmt.Errorf("devtemporal: UI port: %w", err)
		}
	}

	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: dbPath,
		// Write-ahead logging with synchronous=normal: a commit appends to
		// the log without waiting for fsync (a power cut may lose the last
		// transactions of this development server, never corrupt it). Each
		// workflow step is a commit here, so this sets delivery latency
		// under dev. One connection: SQLite has a single writer, and more
		// connections only meet "database is locked" under load, each
		// stalling a history shard.
		ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": "10000"},
		MaxConns:          1,
		MaxIdleConns:      1,
	}
	if err := ensureSchema(ctx, sqlCfg, dbPath); err != nil {
		return nil, err
	}
	if err := trimVisibilityIndexes(ctx, dbPath); err != nil {
		return nil, fmt.Errorf("devtemporal: visibility indexes in %s: %w", dbPath, err)
	}
	nsCfg, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: namespace config: %w", err)
	}
	nsCfg.Detail.Config.Retention = timestamp.DurationFromHours(int64(NamespaceRetention / time.Hour))
	// A no-op when the namespace already exists.
	if err := sqliteschema.CreateNamespaces(sqlCfg, nsCfg); err != nil {
		return nil, fmt.Errorf("devtemporal: create namespace %q: %w", o.Namespace, err)
	}

	muted := new(atomic.Bool)
	ts, frontendAddr, err := startServer(o, sqlCfg, dialHost, serverLogger{sl: logger, muted: muted})
	if err != nil {
		return nil, err
	}

	s := &Server{
		server:    ts,
		frontend:  frontendAddr,
		namespace: o.Namespace,
		dbPath:    dbPath,
		logger:    logger,
		muted:     muted,
	}
	if err := s.waitReady(ctx, o.SearchAttributes); err != nil {
		_ = s.Stop()
		return nil, err
	}

	if o.UIPort > 0 {
		s.startUI(o, frontendAddr)
		if err := waitTCP(ctx, net.JoinHostPort(dialHost, strconv.Itoa(o.UIPort))); err != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("devtemporal: UI did not come up: %w", err)
		}
	}
	return s, nil
}

// FrontendAddress is the host:port to pass to client.Dial.
func (s *Server) FrontendAddress() string { return s.frontend }

// UIURL is the Web UI's base URL, or "" when the UI is disabled.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace is the namespace created at start.
func (s *Server) Namespace() string { return s.namespace }

// DatabasePath is the SQLite file the server persists to.
func (s *Server) DatabasePath() string { return s.dbPath }

// Stop shuts the UI and the server down. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.muted.Store(true)
		if s.ui != nil {
			s.ui.Stop()
			select {
			case <-s.uiDone:
			case <-time.After(5 * time.Second):
				s.logger.Warn("temporal web UI did not stop in time")
			}
		}
		s.stopErr = s.server.Stop()
	})
	return s.stopErr
}

func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("devtemporal: Options.DataDir is required")
	}
	switch {
	case o.Host == "" || strings.EqualFold(o.Host, "localhost"):
		o.Host = defaultHost
	case net.ParseIP(o.Host) == nil:
		// The server binds its frontend on an IP, not a name.
		return o, fmt.Errorf("devtemporal: Options.Host %q is not an IP address", o.Host)
	}
	if o.FrontendPort == 0 {
		o.FrontendPort = DefaultFrontendPort
	}
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	if (o.FrontendPort < 0 && o.FrontendPort != AnyFreePort) || o.FrontendPort > 65535 || o.UIPort > 65535 {
		return o, fmt.Errorf("devtemporal: invalid port (frontend %d, UI %d)", o.FrontendPort, o.UIPort)
	}
	for name, typ := range o.SearchAttributes {
		if name == "" || typ == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			return o, fmt.Errorf("devtemporal: invalid search attribute %q of type %v", name, typ)
		}
	}
	return o, nil
}

// ensureSchema creates the Temporal schema in a new (or empty) SQLite file and
// refuses a file whose schema was only partly created.
func ensureSchema(ctx context.Context, sqlCfg *config.SQL, dbPath string) error {
	objects, complete, err := inspectSchema(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("devtemporal: inspect %s: %w", dbPath, err)
	}
	switch {
	case complete:
		return nil
	case objects > 0:
		return fmt.Errorf("devtemporal: %s holds an incomplete Temporal schema (an interrupted first start?); delete it to start afresh", dbPath)
	}
	if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
		return fmt.Errorf("devtemporal: set up schema in %s: %w", dbPath, err)
	}
	return nil
}

// keptVisibilityIndexes are the indexes of the visibility table that the
// embedded server keeps: the Web UI's default order and its filters on
// workflow ID, type, status, task queue and start time, and the keyword
// search attributes (where DealId and EventType land).
var keptVisibilityIndexes = map[string]bool{
	"default_idx": true, "by_execution_time": true, "by_workflow_id": true,
	"by_workflow_type": true, "by_status": true, "by_task_queue": true,
}

// trimVisibilityIndexes drops the visibility table's other indexes. The
// schema indexes every predefined and pre-allocated search attribute, most
// over JSON extracted from each row, and every workflow's started and
// closed records update all of them: on the one SQLite connection that
// upkeep is paid by every workflow, for filters nobody uses. A query on a
// dropped column still works, by scanning; a development database is
// small. Runs at every start, so older files are trimmed too; dropping is
// idempotent.
func trimVisibilityIndexes(ctx context.Context, dbPath string) error {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	rows, err := db.QueryContext(ctx,
		`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	var drop []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return err
		}
		if !keptVisibilityIndexes[name] && !strings.HasPrefix(name, "by_keyword_") {
			drop = append(drop, name)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, name := range drop {
		// Names come from sqlite_master and are plain identifiers.
		if _, err := db.ExecContext(ctx, `DROP INDEX IF EXISTS "`+name+`"`); err != nil {
			return fmt.Errorf("drop index %s: %w", name, err)
		}
	}
	return nil
}

// inspectSchema counts the objects in the SQLite file (0 when it does not
// exist) and reports whether the schema scripts ran to the end. It uses its
// own short-lived read-only connection: the Temporal SQLite plugin keeps its
// connections for the life of the process.
func inspectSchema(ctx context.Context, dbPath string) (objects int, complete bool, err error) {
	if fi, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	} else if fi.Size() == 0 {
		return 0, false, nil
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = db.Close() }()
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&objects); err != nil {
		return 0, false, err
	}
	var marker int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE name = ?`, schemaCompleteMarker).Scan(&marker); err != nil {
		return 0, false, err
	}
	return objects, marker > 0, nil
}

func buildServerOptions(o Options, frontendPort int, sqlCfg *config.SQL, dialHost, frontendAddr string, sl serverLogger) ([]temporal.ServerOption, error) {
	// The frontend listens where asked; history, matching and the worker
	// service only ever talk to each other, on loopback ports of their own.
	const internalHost = defaultHost
	ports := map[primitives.ServiceName]int{primitives.FrontendService: frontendPort}
	for _, svc := range []primitives.ServiceName{primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		p, err := freePort(internalHost)
		if err != nil {
			return nil, fmt.Errorf("devtemporal: port for %s service: %w", svc, err)
		}
		ports[svc] = p
	}
	// The frontend's HTTP API (and Nexus HTTP endpoints) on a free port next
	// to the gRPC one; without it the server warns on every start.
	httpPort, err := freePort(o.Host)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: port for frontend HTTP API: %w", err)
	}

	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = internalHost
	conf.Persistence = config.Persistence{
		DefaultStore:     "sqlite-default",
		VisibilityStore:  "sqlite-default",
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{"sqlite-default": {SQL: sqlCfg}},
	}
	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontendAddr,
				HTTPAddress:            net.JoinHostPort(dialHost, strconv.Itoa(httpPort)),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	staticHosts := map[primitives.ServiceName]static.Hosts{}
	for svc, port := range ports {
		bind, host := internalHost, internalHost
		var sc config.Service
		if svc == primitives.FrontendService {
			bind, host = o.Host, dialHost
			sc.RPC.HTTPPort = httpPort
		}
		sc.RPC.GRPCPort = port
		sc.RPC.BindOnIP = bind
		conf.Services[string(svc)] = sc
		staticHosts[svc] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(port)))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	// The worker service's own SDK client dials this.
	conf.PublicClient.HostPort = frontendAddr

	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, sl)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: claim mapper: %w", err)
	}

	return []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(staticHosts),
		temporal.WithLogger(sl),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(devDynamicConfig()),
	}, nil
}

// devDynamicConfig is the dynamic configuration of the dev server: every
// feature dealcast may use switched on.
func devDynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():              true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecutionAsyncAccepted.Key(): true,
		dynamicconfig.EnableEagerWorkflowStart.Key():                           true,
		dynamicconfig.EnableActivityEagerExecution.Key():                       true,
		// Each service's namespace registry refreshes on this period (the
		// server's default, stated because waitReady relies on it). Unlike
		// the Temporal CLI's dev server we leave
		// ForceSearchAttributesCacheRefreshOnRead off: on, every workflow
		// start and visibility record reread the namespace and the cluster
		// metadata from the database, under a lock, on the one SQLite
		// connection; waitReady covers the one moment it guards (just
		// after search attributes are added).
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): namespaceRefresh,
		// As the Temporal CLI's dev server: a bigger mutable-state cache and
		// a visibility rate limit that a UI left open does not exhaust.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// The task-queue and history scanners only garbage-collect, which a
		// dev database can do without; their SDK workers are also never
		// stopped by the server's Stop (upstream TODO in service/worker/scanner).
		dynamicconfig.TaskQueueScannerEnabled.Key(): false,
		dynamicconfig.HistoryScannerEnabled.Key():   false,
		// Payloads kept outside the history (external storage) are not
		// configured here, yet with this on every history write walks all
		// of its events' payloads to total their sizes.
		dynamicconfig.ExternalPayloadsEnabled.Key(): false,
		// The visibility queue is read at most 4 times a second (the
		// server's default is 20), 200 tasks at a time (default 100): up
		// to 800 records a second, more than one process can start. A
		// workflow that finishes within a quarter of a second, as a
		// delivery that reaches every receiver at once does, is then
		// usually closed when its "started" record is due: the server
		// skips that write, and the "closed" record inserts the row
		// instead of rewriting it with all its indexes. The Web UI shows a
		// new workflow up to a quarter of a second later.
		dynamicconfig.VisibilityProcessorMaxPollRPS.Key(): 4,
		dynamicconfig.VisibilityTaskBatchSize.Key():       200,
	}
}

// waitReady waits for the frontend to answer, the namespace to be visible and
// the search attributes to be registered.
func (s *Server) waitReady(ctx context.Context, attrs map[string]enumspb.IndexedValueType) error {
	var c client.Client
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		c, err = client.DialContext(ctx, client.Options{
			HostPort:  s.frontend,
			Namespace: s.namespace,
			Logger:    sdklog.NewStructuredLogger(s.logger),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("devtemporal: frontend %s not reachable: %w", s.frontend, err)
	}
	defer c.Close()

	err = retry(ctx, func(ctx context.Context) error {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
		return err
	})
	if err != nil {
		return fmt.Errorf("devtemporal: namespace %q not available: %w", s.namespace, err)
	}
	if len(attrs) == 0 {
		return nil
	}
	added := false
	err = retry(ctx, func(ctx context.Context) error {
		a, err := s.registerSearchAttributes(ctx, c, attrs)
		added = added || a
		return err
	})
	if err != nil || !added {
		return err
	}
	// Each service reads a namespace's search attribute names from its own
	// registry, refreshed every namespaceRefresh; two periods after the
	// registration every one of them has the new names.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * namespaceRefresh):
		return nil
	}
}

// errPermanent marks an error retry must not retry.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// registerSearchAttributes adds those of want the namespace lacks, waits
// until they are listed, and reports whether it added any.
func (s *Server) registerSearchAttributes(ctx context.Context, c client.Client, want map[string]enumspb.IndexedValueType) (added bool, err error) {
	op := c.OperatorService()
	added, err = searchattr.Register(ctx, op, s.namespace, want)
	var mismatch *searchattr.MismatchError
	var invalid *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &mismatch):
		return added, errPermanent{fmt.Errorf("devtemporal: %w (delete %s to start afresh)", err, s.dbPath)}
	case errors.As(err, &invalid):
		return added, errPermanent{fmt.Errorf("devtemporal: %w", err)}
	case err != nil || !added:
		return added, err
	}
	resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.namespace})
	if err != nil {
		return true, err
	}
	for name := range want {
		if _, ok := resp.GetCustomAttributes()[name]; !ok {
			return true, fmt.Errorf("devtemporal: search attribute %q not yet visible", name)
		}
	}
	return true, nil
}

// retry calls f until it succeeds, returns an errPermanent, or ctx ends.
func retry(ctx context.Context, f func(context.Context) error) error {
	delay := 50 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(attemptCtx)
		cancel()
		if err == nil {
			return nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			return perm.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func (s *Server) startUI(o Options, frontendAddr string) {
	uiHost := o.Host
	s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		Host:                uiHost,
		Port:                o.UIPort,
		TemporalGRPCAddress: frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    o.Namespace,
		HideLogs:            true,
		// Plain http on a developer's machine: no Secure cookies, and no
		// fetching of release news from the internet.
		CORS:             uiconfig.CORS{CookieInsecure: true},
		DisableNewsFetch: true,
	}))
	s.uiDone = make(chan struct{})
	go func() {
		defer close(s.uiDone)
		// Start blocks until Stop. It returns nil after Stop and calls
		// os.Exit (echo's Logger.Fatal) if it cannot listen, which the port
		// check in Start guards against.
		if err := s.ui.Start(); err != nil {
			s.logger.Error("temporal web UI stopped", "error", err)
		}
	}()
	host := o.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = defaultHost
	}
	s.uiURL = "http://" + net.JoinHostPort(host, strconv.Itoa(o.UIPort))
}

func checkPortFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// portAttempts is how many times startServer picks the internal ports.
const portAttempts = 3

// startServer builds and starts the Temporal server and returns it with
// the frontend's address. The ports it picks (history, matching, the worker
// service, the frontend's HTTP API, and the frontend's own with
// AnyFreePort) are free when picked, but another process can take one
// before the server binds it (tests of other packages start servers at the
// same time): on "address already in use" they are picked again.
func startServer(o Options, sqlCfg *config.SQL, dialHost string, sl serverLogger) (temporal.Server, string, error) {
	for attempt := 1; ; attempt++ {
		port := o.FrontendPort
		if port == AnyFreePort {
			var err error
			if port, err = freePort(o.Host); err != nil {
				return nil, "", fmt.Errorf("devtemporal: frontend port: %w", err)
			}
		}
		frontendAddr := net.JoinHostPort(dialHost, strconv.Itoa(port))
		serverOpts, err := buildServerOptions(o, port, sqlCfg, dialHost, frontendAddr, sl)
		if err != nil {
			return nil, "", err
		}
		ts, err := temporal.NewServer(serverOpts...)
		if err != nil {
			err = fmt.Errorf("devtemporal: new server: %w", err)
		} else if err = ts.Start(); err != nil {
			_ = ts.Stop() // release whatever services did start
			err = fmt.Errorf("devtemporal: start server: %w", err)
		} else {
			return ts, frontendAddr, nil
		}
		if attempt == portAttempts || !addressInUse(err) {
			return nil, "", err
		}
		sl.sl.Warn("devtemporal: a port was taken before the server bound it; picking new ports", "attempt", attempt, "err", err)
	}
}

// addressInUse reports whether err is a failure to bind a port in use.
// The server's dependency injection flattens errors into text, so the
// text is what can be checked.
func addressInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, addr string) error {
	return retry(ctx, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}
