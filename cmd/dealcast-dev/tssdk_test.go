package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/auth"
	"github.com/dealcast/dealcast/internal/dbtest"
	"github.com/dealcast/dealcast/internal/store"
)

// sdkTS is the TypeScript SDK, from this package's directory.
var sdkTS = filepath.Join("..", "..", "sdk", "ts")

// TestTypeScriptSDK checks sdk/ts: its generated types match
// api/openapi.yaml, it type-checks under strict (with a create-deal call
// that leaves status out), and its end-to-end script passes against the
// dev stack (API, worker, embedded Temporal), webhooks included.
func TestTypeScriptSDK(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed: the TypeScript SDK's tests need Node.js 20+ and npm")
	}
	npm(t, 3*time.Minute, nil, "ci", "--no-audit", "--no-fund")

	// The committed types are what openapi-typescript makes of the
	// committed document now.
	fresh := filepath.Join(t.TempDir(), "schema.d.ts")
	abs, err := filepath.Abs(fresh)
	if err != nil {
		t.Fatal(err)
	}
	npm(t, time.Minute, nil, "exec", "--", "openapi-typescript", "../../api/openapi.yaml", "-o", abs)
	want, _ := os.ReadFile(abs)
	got, err := os.ReadFile(filepath.Join(sdkTS, "src", "schema.d.ts"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("sdk/ts/src/schema.d.ts is stale (%v): run make sdk", err)
	}
	npm(t, 2*time.Minute, nil, "run", "typecheck")

	ctx := context.Background()
	db, err := dbtest.Create(ctx, "tssdk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	db.Pool.Close() // dev opens its own pool
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("TEMPORAL_ADDRESS", "") // dev starts its embedded Temporal
	t.Setenv("DEALCAST_HTTP_ADDR", freeAddr(t))
	t.Setenv("DEALCAST_DATA_DIR", t.TempDir())
	t.Setenv("DEALCAST_JWT_SECRET", "")
	t.Setenv("DEALCAST_SECRET_KEY", "")
	t.Setenv("DEALCAST_WEBHOOK_ALLOW_PRIVATE", "") // dev's default: the script's receiver is on 127.0.0.1
	base := "http://" + mustEnv(t, "DEALCAST_HTTP_ADDR")

	devCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runDev(devCtx, []string{"--temporal-port", strconv.Itoa(-1), "--ui-port", "0"})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop within 30 s")
		}
	})
	waitReady(t, base, true)

	// The script creates its accounts, then asks here for their tokens, as
	// an integrator would ask its identity provider.
	secret := tokenSecret(t)
	minter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := store.Role(r.URL.Query().Get("role"))
		if role != store.RoleSeller && role != store.RoleBuyer {
			http.Error(w, "role must be seller or buyer", http.StatusBadRequest)
			return
		}
		tok, err := auth.Mint(secret, role, r.URL.Query().Get("sub"), time.Hour, auth.MintOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, tok)
	}))
	t.Cleanup(minter.Close)

	npm(t, 2*time.Minute, []string{
		"DEALCAST_URL=" + base,
		"DEALCAST_OPERATOR_TOKEN=" + operatorToken(t),
		"DEALCAST_TOKEN_URL=" + minter.URL + "/token",
	}, "run", "e2e")
}

// npm runs npm in sdk/ts with env added, failing the test with its output
// on a non-zero exit or after timeout.
func npm(t *testing.T, timeout time.Duration, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = sdkTS
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("npm %v: %v\n%s", args, err, out.String())
	}
	t.Logf("npm %v (%.1f s):\n%s", args, time.Since(start).Seconds(), out.String())
}
