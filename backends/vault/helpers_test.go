package vault_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/backends/vault"
)

// These tests run against a real Vault server (internal/testservers/vaultdev,
// Vault's own core in memory) found through VAULT_ADDR and VAULT_TOKEN,
// which scripts/testenv.sh sets. The token must be a root token: each test
// mounts its own KV engines, policies and auth methods under random names.

func requireVault(t testing.TB) (addr, token string) {
	t.Helper()
	addr, token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		t.Fatal("VAULT_ADDR and VAULT_TOKEN are not set: these tests need a real Vault server; " +
			"run them through scripts/testenv.sh, e.g. `scripts/testenv.sh go test -race ./backends/vault/...`, " +
			"which builds and starts bin/vaultdev (internal/testservers/vaultdev)")
	}
	return addr, token
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rootClient returns an API client with the root token from the environment.
func rootClient(t testing.TB) *api.Client {
	t.Helper()
	addr, token := requireVault(t)
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("api.NewClient: %v", err)
	}
	c.SetToken(token)
	return c
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// mountKV enables a fresh KV engine of the given version at a random path
// under "credhelper-test/", so the mount itself has a slash in it, and
// removes it when the test ends. It returns the mount path without a
// trailing slash.
func mountKV(t testing.TB, version string) string {
	t.Helper()
	c := rootClient(t)
	mount := "credhelper-test/" + randomName("kv"+version)
	err := c.Sys().MountWithContext(ctxFor(t), mount, &api.MountInput{
		Type:    "kv",
		Options: map[string]string{"version": version},
	})
	if err != nil {
		t.Fatalf("mount KV v%s at %s: %v", version, mount, err)
	}
	t.Cleanup(func() {
		if err := c.Sys().Unmount(mount); err != nil {
			t.Logf("unmount %s: %v", mount, err)
		}
	})
	if version == "2" {
		waitKVReady(t, c, mount)
	}
	return mount
}

// waitKVReady waits until a new KV v2 mount answers: right after it is
// enabled, the engine may briefly refuse requests while it initialises.
func waitKVReady(t testing.TB, c *api.Client, mount string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Logical().ReadWithContext(ctxFor(t), mount+"/config")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV v2 mount %s not ready: %v", mount, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var keySeq atomic.Int64

// keyIn returns a fresh key in mount for test t.
func keyIn(t testing.TB, mount string) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s/creds/%s-%d", mount, name, keySeq.Add(1))
}

// newBackend returns a Backend on the root token from the environment.
func newBackend(t testing.TB, optFns ...func(*vault.Options)) *vault.Backend {
	t.Helper()
	requireVault(t)
	b, err := vault.NewFromEnv(optFns...)
	if err != nil {
		t.Fatalf("vault.NewFromEnv: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// tokenWithPolicy creates a policy from rules and a child token that has it
// (and, unless noDefault, Vault's default policy).
func tokenWithPolicy(t testing.TB, rules string, noDefault bool) string {
	t.Helper()
	c := rootClient(t)
	name := randomName("credhelper-test")
	if err := c.Sys().PutPolicyWithContext(ctxFor(t), name, rules); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	sec, err := c.Auth().Token().CreateWithContext(ctxFor(t), &api.TokenCreateRequest{
		Policies:        []string{name},
		NoDefaultPolicy: noDefault,
		TTL:             "10m",
	})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return sec.Auth.ClientToken
}

// splitMountPath splits a test key into its mount and secret path.
func splitMountPath(t testing.TB, mount, key string) string {
	t.Helper()
	p, ok := strings.CutPrefix(key, mount+"/")
	if !ok {
		t.Fatalf("key %q not in mount %q", key, mount)
	}
	return p
}
