package deploy_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml the way `docker compose` does, with
// an empty environment so every ${VAR:-default} takes its default.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("dealcast", true)
	})
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// oneShot are the jobs that run to completion; everything else keeps running.
var oneShot = []string{"cockroach-init", "migrate", "temporal-schema", "temporal-setup"}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	want := map[string]string{ // service -> image repository
		"cockroach":           "cockroachdb/cockroach",
		"cockroach-init":      "cockroachdb/cockroach",
		"migrate":             "dealcast",
		"temporal-postgresql": "postgres",
		"temporal-schema":     "temporalio/admin-tools",
		"temporal":            "temporalio/server",
		"temporal-setup":      "temporalio/admin-tools",
		"temporal-ui":         "temporalio/ui",
		"api":                 "dealcast",
		"worker":              "dealcast",
	}
	if got := sortedKeys(p.Services); !slices.Equal(got, sortedKeys(want)) {
		t.Fatalf("services %v, want %v", got, sortedKeys(want))
	}
	for name, repo := range want {
		s := p.Services[name]
		image, tag, ok := strings.Cut(s.Image, ":")
		if image != repo || !ok || tag == "" || tag == "latest" {
			t.Errorf("%s: image %q, want %s with a pinned tag", name, s.Image, repo)
		}
		if repo == "dealcast" && (s.Build == nil || s.Build.Dockerfile != "Dockerfile") {
			t.Errorf("%s: not built from the repository's Dockerfile", name)
		}
		if slices.Contains(oneShot, name) != (s.Restart == "no") {
			t.Errorf("%s: restart %q; one-shot jobs must not restart, services must", name, s.Restart)
		}
	}
	cmds := binaryCommands(t)
	for _, name := range []string{"migrate", "api", "worker"} {
		s := p.Services[name]
		if len(s.Command) != 1 || s.Command[0] != name || !slices.Contains(cmds, name) {
			t.Errorf("%s: command %v, want [%s], a command of the binary (%v)", name, s.Command, name, cmds)
		}
	}
	if c := strings.Join(p.Services["cockroach"].Command, " "); !strings.Contains(c, "start-single-node") || !strings.Contains(c, "--insecure") {
		t.Errorf("cockroach: command %q, want a single insecure node", c)
	}
	if c := strings.Join(p.Services["cockroach-init"].Command, " "); !strings.Contains(c, "CREATE DATABASE IF NOT EXISTS dealcast") {
		t.Errorf("cockroach-init: command %q does not create the database", c)
	}
}

func TestComposePorts(t *testing.T) {
	p := loadCompose(t)
	want := map[string][2]string{ // service -> published, target
		"api":         {"8080", "8080"},
		"worker":      {"8082", "8080"},
		"temporal-ui": {"8233", "8080"},
		"temporal":    {"7233", "7233"},
		"cockroach":   {"26257", "26257"},
	}
	for name, w := range want {
		found := false
		for _, port := range p.Services[name].Ports {
			if port.Published == w[0] && port.Target == mustUint(t, w[1]) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: ports %+v, want %s->%s", name, p.Services[name].Ports, w[0], w[1])
		}
	}
	// The api and worker listen where their ports and health checks say.
	for _, name := range []string{"api", "worker"} {
		if addr := envValue(t, p.Services[name], "DEALCAST_HTTP_ADDR"); addr != ":8080" {
			t.Errorf("%s: DEALCAST_HTTP_ADDR %q, want :8080", name, addr)
		}
	}
}

func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t)
	s := binarySettings(t)
	for _, name := range []string{"migrate", "api", "worker"} {
		for key := range p.Services[name].Environment {
			if !s.has(key) {
				t.Errorf("%s: %s is not a setting of the binary (it reads %v)", name, key, sortedKeys(s.names))
			}
		}
		u, err := url.Parse(envValue(t, p.Services[name], "DATABASE_URL"))
		if err != nil || u.Host != "cockroach:26257" || u.Path != "/dealcast" || u.Query().Get("sslmode") != "disable" {
			t.Errorf("%s: DATABASE_URL %v is not the insecure local CockroachDB's dealcast database", name, u)
		}
	}
	for _, name := range []string{"api", "worker"} {
		svc := p.Services[name]
		if got := envValue(t, svc, "TEMPORAL_ADDRESS"); got != "temporal:7233" {
			t.Errorf("%s: TEMPORAL_ADDRESS %q, want temporal:7233", name, got)
		}
		if envValue(t, svc, "DEALCAST_JWT_SECRET") == "" {
			t.Errorf("%s: no DEALCAST_JWT_SECRET default", name)
		}
		// That the default is a key the service accepts is checked beside
		// the service: service/compose_test.go.
		if envValue(t, svc, "DEALCAST_SECRET_KEY") == "" {
			t.Errorf("%s: no DEALCAST_SECRET_KEY default", name)
		}
	}
}

func TestComposeHealthChecks(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if slices.Contains(oneShot, name) {
			continue
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no health check", name)
			continue
		}
		if s.HealthCheck.Interval == nil || s.HealthCheck.Retries == nil {
			t.Errorf("%s: health check without interval or retries", name)
		}
	}
	// The dealcast image has no shell: its probes run the binary, against
	// the /readyz both roles serve on DEALCAST_HTTP_ADDR.
	for _, name := range []string{"api", "worker"} {
		test := p.Services[name].HealthCheck.Test
		want := []string{"CMD", "/usr/local/bin/dealcast", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"}
		if !slices.Equal(test, want) {
			t.Errorf("%s: health check %q, want %q", name, test, want)
		}
	}
	if !slices.Contains(binaryCommands(t), "healthcheck") {
		t.Error("the binary has no healthcheck command")
	}
	if c := strings.Join(p.Services["cockroach"].HealthCheck.Test, " "); !strings.Contains(c, "cockroach sql --insecure") && !strings.Contains(c, "/health?ready=1") {
		t.Errorf("cockroach: health check %q", c)
	}
}

func TestComposeDependencies(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			want := types.ServiceConditionHealthy
			if slices.Contains(oneShot, dep) {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if d.Condition != want {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, d.Condition, want)
			}
		}
	}
	needs := map[string][]string{
		"cockroach-init":  {"cockroach"},
		"migrate":         {"cockroach-init"},
		"temporal-schema": {"temporal-postgresql"},
		"temporal":        {"temporal-schema"},
		"temporal-setup":  {"temporal"},
		"temporal-ui":     {"temporal"},
		"api":             {"cockroach", "migrate", "temporal", "temporal-setup"},
		"worker":          {"cockroach", "migrate", "temporal", "temporal-setup"},
	}
	for name, deps := range needs {
		for _, dep := range deps {
			if _, ok := p.Services[name].DependsOn[dep]; !ok {
				t.Errorf("%s does not wait for %s", name, dep)
			}
		}
	}
}

// TestComposeTemporalSetup checks that the namespace the services use is
// created and carries every search attribute delivery workflows set.
func TestComposeTemporalSetup(t *testing.T) {
	p := loadCompose(t)
	setup := p.Services["temporal-setup"]
	script := strings.Join(setup.Command, "\n")
	ns := envValue(t, setup, "NAMESPACE")
	if ns != envValue(t, p.Services["worker"], "TEMPORAL_NAMESPACE") || ns != envValue(t, p.Services["api"], "TEMPORAL_NAMESPACE") {
		t.Errorf("temporal-setup prepares namespace %q, not the one api and worker use", ns)
	}
	if !strings.Contains(script, "operator namespace create") {
		t.Error("temporal-setup does not create the namespace")
	}
	// That every search attribute delivery sets is created is checked
	// beside the service: service/compose_test.go.
	// Each attribute is listed as name:Type and created with that --type.
	if !strings.Contains(script, "search-attribute create") || !strings.Contains(script, "--type ${attr#*:}") ||
		!strings.Contains(script, ":Keyword ") {
		t.Errorf("temporal-setup script does not create Keyword search attributes:\n%s", script)
	}
	// Every file the stack mounts is in the repository.
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

// envValue is a service's value of key; a missing key fails the test.
func envValue(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil {
		t.Fatalf("%s: no %s", s.Name, key)
	}
	return *v
}

func mustUint(t *testing.T, s string) uint32 {
	t.Helper()
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a port: %q", s)
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}
