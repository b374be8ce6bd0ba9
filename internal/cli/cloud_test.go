package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TestCloudBackendsEndToEnd stores, reads and inspects a pair through the
// command line on the real servers scripts/testenv.sh starts: moto for
// awssm: and a Vault dev server (KV v2) for vault:.
func TestCloudBackendsEndToEnd(t *testing.T) {
	if os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") == "" || os.Getenv("VAULT_ADDR") == "" {
		t.Fatal("this test needs moto_server and a Vault server: run it with scripts/testenv.sh go test ./internal/cli/ (make test does)")
	}
	mount := fmt.Sprintf("cli-%d", time.Now().UnixNano())
	vc, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := vc.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	defer vc.Sys().Unmount(mount)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := vc.Logical().ReadWithContext(ctx, mount+"/config"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	for _, backend := range []string{
		fmt.Sprintf("awssm:credhelper-cli/%d", time.Now().UnixNano()),
		"vault:" + mount + "/app/momento",
	} {
		t.Run(strings.Split(backend, ":")[0], func(t *testing.T) {
			isolate(t)
			be := "--backend=" + backend
			if r := cli(t, "", "get", be); r.code != 1 || !strings.Contains(r.stderr, "credhelper put") {
				t.Fatalf("get before put: exit %d, stderr %q", r.code, r.stderr)
			}
			if r := cli(t, record(secretKey, secretRefresh, 0), "put", be); r.code != 0 {
				t.Fatalf("put: %d %s", r.code, r.stderr)
			}
			if r := cli(t, "", "get", be); r.code != 0 || r.stdout != secretKey+"\n" {
				t.Fatalf("get: %d %q %q", r.code, r.stdout, r.stderr)
			}
			r := cli(t, "", "status", be)
			if r.code != 0 || !strings.Contains(r.stdout, "cell-1.example.com") || strings.Contains(r.stdout, secretKey) {
				t.Fatalf("status: %d %q", r.code, r.stdout)
			}
			if r := cli(t, "not json", "put", be); r.code != 2 {
				t.Fatalf("bad put: exit %d", r.code)
			}
			if r := cli(t, "", "get", be); r.stdout != secretKey+"\n" {
				t.Fatal("a refused put changed the stored pair")
			}
		})
	}
}
