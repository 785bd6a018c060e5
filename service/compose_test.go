package service_test

import (
	"os"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/dealcast/dealcast/internal/config"
	"github.com/dealcast/dealcast/internal/delivery"
	"github.com/dealcast/dealcast/service"
)

// composeFile is the part of docker-compose.yml these checks read.
type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
	} `yaml:"services"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return f
}

// composeDefault is the value of "${NAME:-default}" when NAME is unset.
func composeDefault(v string) string {
	if inner, ok := strings.CutPrefix(v, "${"); ok {
		if _, def, ok := strings.Cut(strings.TrimSuffix(inner, "}"), ":-"); ok {
			return def
		}
	}
	return v
}

// The compose stack's development secret key is one the service accepts:
// the stack starts without an .env file.
func TestComposeSecretKeyOpensASealer(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"api", "worker"} {
		key := composeDefault(f.Services[name].Environment["DEALCAST_SECRET_KEY"])
		if _, err := service.NewSealer(config.Config{SecretKey: key}); err != nil {
			t.Errorf("%s: DEALCAST_SECRET_KEY default %q: %v", name, key, err)
		}
	}
}

// The compose stack's setup creates every search attribute delivery
// workflows carry: without one, Temporal refuses their starts.
func TestComposeCreatesTheSearchAttributes(t *testing.T) {
	script := strings.Join(loadCompose(t).Services["temporal-setup"].Command, "\n")
	if !strings.Contains(script, "search-attribute create") {
		t.Fatalf("temporal-setup creates no search attribute:\n%s", script)
	}
	// temporal-setup lists each attribute as name:Type.
	types := map[enumspb.IndexedValueType]string{
		enumspb.INDEXED_VALUE_TYPE_KEYWORD:      "Keyword",
		enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
	}
	for name, typ := range delivery.SearchAttributes {
		cli, ok := types[typ]
		if !ok {
			t.Fatalf("search attribute %s is %v; teach this test and temporal-setup its type", name, typ)
		}
		if !strings.Contains(script, " "+name+":"+cli+" ") && !strings.Contains(script, " "+name+":"+cli+";") {
			t.Errorf("temporal-setup does not create search attribute %s as %s", name, cli)
		}
	}
}
