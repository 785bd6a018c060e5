package deploy_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, ENV, RUN, …
	args string
}

// dockerfile splits the repository's Dockerfile into stages of instructions.
func dockerfile(t *testing.T) [][]instruction {
	t.Helper()
	var stages [][]instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
			}
			return
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for _, line := range strings.Split(string(readFile(t, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func find(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// TestDockerfile checks the image the compose file and the manifests run:
// a static build with the project's Go toolchain, then a non-root
// distroless (or scratch) image whose entrypoint is where the health checks
// and probes call it.
func TestDockerfile(t *testing.T) {
	stages := dockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	from := find(build, "FROM")[0]
	if !regexp.MustCompile(`(^|\s)golang:\S+\s+AS\s+build$`).MatchString(from) {
		t.Errorf("build stage FROM %q, want a golang image named build", from)
	}
	env := strings.Join(find(build, "ENV"), " ")
	makefile := string(readFile(t, "Makefile"))
	toolchain := regexp.MustCompile(`(?m)^export GOTOOLCHAIN := (\S+)$`).FindStringSubmatch(makefile)
	if toolchain == nil {
		t.Fatal("the Makefile exports no GOTOOLCHAIN")
	}
	if !strings.Contains(env, "GOTOOLCHAIN="+toolchain[1]) {
		t.Errorf("build stage ENV %q does not pin GOTOOLCHAIN=%s as the Makefile does", env, toolchain[1])
	}
	if !strings.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("build stage ENV %q: the binary must be static (CGO_ENABLED=0)", env)
	}
	// The modules layer needs the go.mod of every module the service
	// replaces with a directory of the repository.
	copies := strings.Fields(strings.Join(find(build, "COPY"), " "))
	for _, m := range regexp.MustCompile(`(?m)^replace \S+ => \./(\S+)$`).FindAllStringSubmatch(string(readFile(t, "go.mod")), -1) {
		if !slices.Contains(copies, m[1]+"/go.mod") {
			t.Errorf("build stage does not copy %s/go.mod before downloading modules", m[1])
		}
	}
	runs := strings.Join(find(build, "RUN"), "\n")
	if !regexp.MustCompile(`go build .*-o /out/dealcast \./cmd/dealcast`).MatchString(runs) {
		t.Errorf("build stage does not build ./cmd/dealcast into /out/dealcast:\n%s", runs)
	}

	base := find(final, "FROM")[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("runtime image %q, want distroless static or scratch", base)
	}
	if !slices.Contains(find(final, "COPY"), "--from=build /out/dealcast /usr/local/bin/dealcast") {
		t.Errorf("runtime stage COPY %v does not install the binary at /usr/local/bin/dealcast", find(final, "COPY"))
	}
	users := find(final, "USER")
	if len(users) == 0 {
		t.Fatal("runtime stage sets no USER")
	}
	if u, _, _ := strings.Cut(users[len(users)-1], ":"); u == "root" || u == "0" {
		t.Errorf("runtime stage runs as %q", users[len(users)-1])
	}
	if !slices.Contains(find(final, "EXPOSE"), "8080") {
		t.Errorf("runtime stage EXPOSE %v, want 8080", find(final, "EXPOSE"))
	}
	var entry []string
	if e := find(final, "ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil || !slices.Equal(entry, []string{"/usr/local/bin/dealcast"}) {
		t.Errorf("ENTRYPOINT %v, want [\"/usr/local/bin/dealcast\"] in exec form", e)
	}
}

// TestDockerignore checks that the build context keeps what the build needs.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(string(readFile(t, ".dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimSuffix(line, "/"))
		}
	}
	for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "api", "activities", "workflows", "schema"} {
		if slices.Contains(patterns, needed) || slices.Contains(patterns, "*") {
			t.Errorf(".dockerignore leaves %s out of the build", needed)
		}
	}
}
