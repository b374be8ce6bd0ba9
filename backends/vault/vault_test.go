package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

func TestKVv1MountRefused(t *testing.T) {
	mount := mountKV(t, "1")
	key := keyIn(t, mount)
	// Put something there, so a mistaken v1 read would find data.
	if _, err := rootClient(t).Logical().WriteWithContext(ctxFor(t), key, map[string]any{"apiKey": "x"}); err != nil {
		t.Fatalf("seed KV v1 secret: %v", err)
	}
	b := newBackend(t)
	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s on a KV v1 mount succeeded, want it refused", op)
		}
		if !errors.Is(err, provider.ErrUnsupported) || provider.IsTransient(err) {
			t.Errorf("%s: err = %v, want a permanent error wrapping ErrUnsupported", op, err)
		}
		if !strings.Contains(err.Error(), "KV version 1") || !strings.Contains(err.Error(), "enable-versioning") {
			t.Errorf("%s: error %q does not say the mount is KV v1 and how to fix it", op, err)
		}
	}
	_, err := b.Load(ctxFor(t), key)
	check("Load", err)
	_, err = b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("v1"))
	check("CompareAndSwap", err)
	check("CheckWrite", b.CheckWrite(ctxFor(t), key))
	// Nothing was written over the v1 secret.
	sec, err := rootClient(t).Logical().ReadWithContext(ctxFor(t), key)
	if err != nil || sec == nil || sec.Data["apiKey"] != "x" {
		t.Fatalf("KV v1 secret changed: %v, %v", sec, err)
	}
}

func TestReadOnlyPolicy(t *testing.T) {
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	root := newBackend(t)
	ver, err := root.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("seed"))
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	token := tokenWithPolicy(t, fmt.Sprintf(`path %q { capabilities = ["read"] }`, mount+"/data/*"), false)
	ro := newBackend(t, func(o *vault.Options) { o.Token = token })

	e, err := ro.Load(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Load with a read-only policy: %v", err)
	}
	if e.Version != ver {
		t.Fatalf("Load version = %q, want %q", e.Version, ver)
	}

	dataPath := mount + "/data/" + splitMountPath(t, mount, key)
	err = ro.CheckWrite(ctxFor(t), key)
	if !errors.Is(err, provider.ErrPermission) || provider.IsTransient(err) {
		t.Fatalf("CheckWrite with a read-only policy: err = %v, want permanent ErrPermission", err)
	}
	if !strings.Contains(err.Error(), dataPath) || !strings.Contains(err.Error(), `"update"`) {
		t.Errorf("CheckWrite error %q does not name the policy path %q and the update capability", err, dataPath)
	}

	_, err = ro.CompareAndSwap(ctxFor(t), key, ver, backendtest.Value("denied"))
	if !errors.Is(err, provider.ErrPermission) || provider.IsTransient(err) {
		t.Fatalf("CompareAndSwap with a read-only policy: err = %v, want permanent ErrPermission", err)
	}
	if !strings.Contains(err.Error(), dataPath) || !strings.Contains(err.Error(), `"update"`) {
		t.Errorf("CompareAndSwap error %q does not name the policy path %q and the update capability", err, dataPath)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("error text contains the Vault token")
	}
	// A create is refused too, and names the create capability.
	_, err = ro.CompareAndSwap(ctxFor(t), keyIn(t, mount), "", backendtest.Value("denied"))
	if !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), `"create"`) {
		t.Fatalf("create with a read-only policy: err = %v, want ErrPermission naming create", err)
	}

	// Nothing was written: same version, same value.
	after, err := root.Load(ctxFor(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != ver || string(after.Value) != string(e.Value) {
		t.Fatalf("secret changed under a read-only policy: version %q -> %q", ver, after.Version)
	}
	md, err := rootClient(t).KVv2(mount).GetMetadata(ctxFor(t), splitMountPath(t, mount, key))
	if err != nil {
		t.Fatal(err)
	}
	if md.CurrentVersion != 1 || len(md.Versions) != 1 {
		t.Fatalf("metadata shows writes: current_version %d, %d versions", md.CurrentVersion, len(md.Versions))
	}
}

// minimumPolicy is the policy the README documents, for one credential.
func minimumPolicy(mount, secret string) string {
	return fmt.Sprintf(`
path "%[1]s/data/%[2]s" {
  capabilities = ["create", "read", "update"]
}
path "sys/capabilities-self" {
  capabilities = ["update"]
}
`, mount, secret)
}

// TestMinimumPolicy checks that the README's policy is enough for every
// operation, with a token that lacks Vault's default policy.
func TestMinimumPolicy(t *testing.T) {
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	secret := splitMountPath(t, mount, key)
	token := tokenWithPolicy(t, minimumPolicy(mount, secret), true)
	b := newBackend(t, func(o *vault.Options) { o.Token = token })

	if _, err := b.Load(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Load of a missing key: %v, want ErrNotFound", err)
	}
	v1, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("min-1"))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := b.CheckWrite(ctxFor(t), key); err != nil {
		t.Fatalf("CheckWrite: %v", err)
	}
	v2, err := b.CompareAndSwap(ctxFor(t), key, v1, backendtest.Value("min-2"))
	if err != nil {
		t.Fatalf("swap: %v", err)
	}
	if _, err := b.CompareAndSwap(ctxFor(t), key, v1, backendtest.Value("min-stale")); !errors.Is(err, provider.ErrConflict) {
		t.Fatalf("stale swap: %v, want ErrConflict", err)
	}
	e, err := b.Load(ctxFor(t), key)
	if err != nil || e.Version != v2 {
		t.Fatalf("Load = %q, %v; want version %q", e.Version, err, v2)
	}
	// Without the sys/capabilities-self rule (and without the default
	// policy that grants it) CheckWrite says which rule is missing.
	bare := tokenWithPolicy(t, fmt.Sprintf(`path "%s/data/%s" { capabilities = ["create", "read", "update"] }`, mount, secret), true)
	nb := newBackend(t, func(o *vault.Options) { o.Token = bare })
	if err := nb.CheckWrite(ctxFor(t), key); !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), `path "sys/capabilities-self"`) {
		t.Fatalf("CheckWrite without sys/capabilities-self: err = %v, want ErrPermission naming that path", err)
	}
	// The same token may not touch another secret in the mount.
	if _, err := b.Load(ctxFor(t), keyIn(t, mount)); !errors.Is(err, provider.ErrPermission) {
		t.Fatalf("Load outside the policy: %v, want ErrPermission", err)
	}
}

func TestOutOfBandWriteDetected(t *testing.T) {
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	b := newBackend(t)
	if _, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("ours-1")); err != nil {
		t.Fatal(err)
	}
	e, err := b.Load(ctxFor(t), key)
	if err != nil {
		t.Fatal(err)
	}
	// Another client (a person with the vault CLI, another host) writes.
	kv := rootClient(t).KVv2(mount)
	var theirs map[string]any
	if err := json.Unmarshal(backendtest.Value("theirs"), &theirs); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctxFor(t), splitMountPath(t, mount, key), theirs); err != nil {
		t.Fatalf("out-of-band write: %v", err)
	}
	_, err = b.CompareAndSwap(ctxFor(t), key, e.Version, backendtest.Value("ours-2"))
	if !errors.Is(err, provider.ErrConflict) || provider.IsTransient(err) {
		t.Fatalf("CompareAndSwap after an out-of-band write: err = %v, want ErrConflict", err)
	}
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		t.Errorf("conflict does not carry Vault's 400 response: %v", err)
	}
	got, err := kv.Get(ctxFor(t), splitMountPath(t, mount, key))
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["apiKey"] != "auth-theirs" || got.VersionMetadata.Version != 2 {
		t.Fatalf("out-of-band value lost: apiKey %v at version %d", got.Data["apiKey"], got.VersionMetadata.Version)
	}
}

func TestDeletedLatestVersion(t *testing.T) {
	for _, how := range []string{"soft-delete", "destroy"} {
		t.Run(how, func(t *testing.T) {
			mount := mountKV(t, "2")
			key := keyIn(t, mount)
			secret := splitMountPath(t, mount, key)
			b := newBackend(t)
			v1, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("old-1"))
			if err != nil {
				t.Fatal(err)
			}
			v2, err := b.CompareAndSwap(ctxFor(t), key, v1, backendtest.Value("old-2"))
			if err != nil {
				t.Fatal(err)
			}
			kv := rootClient(t).KVv2(mount)
			if how == "destroy" {
				err = kv.Destroy(ctxFor(t), secret, []int{2})
			} else {
				err = kv.Delete(ctxFor(t), secret)
			}
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			if _, err := b.Load(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
				t.Fatalf("Load after %s of the latest version: err = %v, want ErrNotFound", how, err)
			}

			// Several creators race to re-create it: exactly one wins,
			// the others see ErrConflict.
			const n = 8
			var (
				mu     sync.Mutex
				wins   []provider.Version
				winner string
				wg     sync.WaitGroup
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tag := fmt.Sprintf("new-%d", i)
					ver, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value(tag))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins = append(wins, ver)
						winner = tag
					case !errors.Is(err, provider.ErrConflict):
						t.Errorf("losing re-create: err = %v, want ErrConflict", err)
					}
				}()
			}
			wg.Wait()
			if len(wins) != 1 {
				t.Fatalf("%d of %d re-creates won, want exactly 1", len(wins), n)
			}
			if wins[0] != "3" {
				t.Errorf("re-created version = %q, want \"3\" (after %s, %s)", wins[0], v1, v2)
			}
			e, err := b.Load(ctxFor(t), key)
			if err != nil {
				t.Fatalf("Load after re-create: %v", err)
			}
			var got, want any
			json.Unmarshal(e.Value, &got)
			json.Unmarshal(backendtest.Value(winner), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) || e.Version != wins[0] {
				t.Fatalf("Load after re-create = version %q, want the winner's value at %q", e.Version, wins[0])
			}
			// And now it exists again: a create conflicts.
			if _, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("again")); !errors.Is(err, provider.ErrConflict) {
				t.Fatalf("create over a live secret: %v, want ErrConflict", err)
			}
		})
	}
}

// TestFieldsAreSecretKeys reads the secret as `vault kv get` does and finds
// the record's fields as the secret's own keys.
func TestFieldsAreSecretKeys(t *testing.T) {
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	b := newBackend(t)
	rec := &provider.Record{
		Pair:  provider.Pair{AuthToken: "auth-x", RefreshToken: "refresh-x", ValidUntil: time.Unix(4102444800, 0), Generation: 7},
		Lease: &provider.Lease{Holder: "host-a/123", Expires: time.Unix(4102444000, 0), Generation: 7},
	}
	rec.SetExtra("owner", json.RawMessage(`"team-a"`))
	value, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndSwap(ctxFor(t), key, "", value); err != nil {
		t.Fatal(err)
	}
	got, err := rootClient(t).KVv2(mount).Get(ctxFor(t), splitMountPath(t, mount, key))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"apiKey":       "auth-x",
		"refreshToken": "refresh-x",
		"validUntil":   "4102444800",
		"generation":   "7",
		"owner":        "team-a",
	}
	for k, v := range want {
		if fmt.Sprint(got.Data[k]) != v {
			t.Errorf("secret key %q = %v, want %s", k, got.Data[k], v)
		}
	}
	lease, ok := got.Data["lease"].(map[string]any)
	if !ok || lease["holder"] != "host-a/123" {
		t.Errorf("secret key \"lease\" = %v, want a nested object with the holder", got.Data["lease"])
	}
	// And the record read back decodes to the same record.
	e, err := b.Load(ctxFor(t), key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := provider.DecodeRecord(e.Value)
	if err != nil {
		t.Fatalf("stored record does not decode: %v", err)
	}
	if back.Pair != rec.Pair || back.Lease == nil || *back.Lease != *rec.Lease {
		t.Fatalf("record changed through Vault: %v lease %v", back.Pair, back.Lease)
	}
	if raw, ok := back.Extra("owner"); !ok || string(raw) != `"team-a"` {
		t.Fatalf("unknown field lost: %s", raw)
	}
}

func TestAppRoleLogin(t *testing.T) {
	t.Parallel() // it mostly waits for tokens to expire
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	c := rootClient(t)
	authPath := randomName("approle")
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctxFor(t), authPath, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	t.Cleanup(func() { c.Sys().DisableAuth(authPath) })
	policy := randomName("credhelper-approle")
	if err := c.Sys().PutPolicyWithContext(ctxFor(t), policy, minimumPolicy(mount, splitMountPath(t, mount, key))); err != nil {
		t.Fatal(err)
	}
	// Short TTLs so that the test sees the token renewed and, at its
	// maximum TTL, replaced by a new login.
	role := "auth/" + authPath + "/role/credhelper"
	if _, err := c.Logical().WriteWithContext(ctxFor(t), role, map[string]any{
		"token_policies": []string{policy},
		"token_ttl":      "2s",
		"token_max_ttl":  "4s",
	}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	rid, err := c.Logical().ReadWithContext(ctxFor(t), role+"/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := c.Logical().WriteWithContext(ctxFor(t), role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	roleID, secretID := rid.Data["role_id"].(string), sid.Data["secret_id"].(string)
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("WrongSecretID", func(t *testing.T) {
		b := newBackend(t, func(o *vault.Options) {
			o.Token = "" // VAULT_TOKEN is ignored for AppRole
			o.AppRole = vault.AppRole{RoleID: roleID, SecretID: "not-the-secret-id", MountPath: authPath}
		})
		_, err := b.Load(ctxFor(t), key)
		if !errors.Is(err, provider.ErrPermission) || provider.IsTransient(err) {
			t.Fatalf("Load with a wrong secret_id: err = %v, want permanent ErrPermission", err)
		}
		if strings.Contains(err.Error(), "not-the-secret-id") {
			t.Fatal("error text contains the secret_id")
		}
	})

	t.Run("LoginAndRenew", func(t *testing.T) {
		client := rootClient(t)
		var logBuf testexec.Buffer
		b, err := vault.New(client, func(o *vault.Options) {
			o.AppRole = vault.AppRole{RoleID: roleID, SecretIDFile: secretFile, MountPath: authPath}
			o.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if client.Token() != "" {
			t.Fatal("New with AppRole kept the root token on the client")
		}
		ver, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("approle-0"))
		if err != nil {
			t.Fatalf("create after AppRole login: %v", err)
		}
		if err := b.CheckWrite(ctxFor(t), key); err != nil {
			t.Fatalf("CheckWrite after AppRole login: %v", err)
		}
		first := client.Token()
		if first == "" {
			t.Fatal("no token after AppRole login")
		}
		// Keep using the backend for longer than the token's maximum TTL:
		// every call must keep working as the token is renewed and then
		// replaced.
		tokens := map[string]bool{first: true}
		deadline := time.Now().Add(7 * time.Second)
		for i := 1; time.Now().Before(deadline); i++ {
			ver, err = b.CompareAndSwap(ctxFor(t), key, ver, backendtest.Value(fmt.Sprintf("approle-%d", i)))
			if err != nil {
				t.Fatalf("swap %d, %.1fs after login: %v", i, 7-time.Until(deadline).Seconds(), err)
			}
			tokens[client.Token()] = true
			time.Sleep(250 * time.Millisecond)
		}
		if len(tokens) < 2 {
			t.Fatalf("the token was never replaced by a new login past its 4s maximum TTL")
		}
		// A token revoked behind the backend's back is replaced by a new
		// login, and the operation that met the 403 succeeds.
		revoked := client.Token()
		if err := rootClient(t).Auth().Token().RevokeTreeWithContext(ctxFor(t), revoked); err != nil {
			t.Fatalf("revoke the backend's token: %v", err)
		}
		if _, err = b.CompareAndSwap(ctxFor(t), key, ver, backendtest.Value("after-revoke")); err != nil {
			t.Fatalf("swap after the token was revoked: %v", err)
		}
		if client.Token() == revoked {
			t.Fatal("the revoked token is still in use")
		}
		// The current token was renewed, not only re-issued: Vault reports
		// its TTL within the role's limits.
		look, err := client.Auth().Token().LookupSelfWithContext(ctxFor(t))
		if err != nil {
			t.Fatalf("lookup-self with the backend's token: %v", err)
		}
		if name, _ := look.Data["display_name"].(string); !strings.HasPrefix(name, "approle") {
			t.Errorf("token display_name = %q, want an AppRole token", name)
		}
		logs := logBuf.String()
		t.Logf("backend log:\n%s", logs)
		if n := strings.Count(logs, "logged in with AppRole"); n < 2 {
			t.Errorf("%d AppRole logins logged, want at least 2 (first and after the max TTL); log:\n%s", n, logs)
		}
		if !strings.Contains(logs, "AppRole token renewed") {
			t.Errorf("no token renewal logged; log:\n%s", logs)
		}
		if strings.Contains(logs, secretID) || strings.Contains(logs, first) {
			t.Error("the log contains the secret_id or a token")
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Load(ctxFor(t), key); err == nil {
			t.Error("Load after Close succeeded")
		}
	})
}

func TestTokenFile(t *testing.T) {
	mount := mountKV(t, "2")
	key := keyIn(t, mount)
	_, token := requireVault(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", "")
	b, err := vault.NewFromEnv(func(o *vault.Options) { o.TokenFile = file })
	if err != nil {
		t.Fatalf("NewFromEnv with TokenFile: %v", err)
	}
	if _, err := b.CompareAndSwap(ctxFor(t), key, "", backendtest.Value("tf")); err != nil {
		t.Fatalf("CompareAndSwap with TokenFile: %v", err)
	}
	if _, err := vault.NewFromEnv(); err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("NewFromEnv without a token: err = %v, want one naming VAULT_TOKEN", err)
	}
}

func TestUnreachableIsTransient(t *testing.T) {
	// A loopback port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	client, err := api.NewClient(&api.Config{Address: addr, MaxRetries: 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := vault.New(client, func(o *vault.Options) { o.Token = "unused-token" })
	if err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context) error{
		"Load": func(ctx context.Context) error { _, err := b.Load(ctx, "secret/x"); return err },
		"CompareAndSwap": func(ctx context.Context) error {
			_, err := b.CompareAndSwap(ctx, "secret/x", "1", backendtest.Value("x"))
			return err
		},
		"CheckWrite": func(ctx context.Context) error { return b.CheckWrite(ctx, "secret/x") },
	} {
		err := op(ctxFor(t))
		if !provider.IsTransient(err) || errors.Is(err, provider.ErrNotFound) {
			t.Errorf("%s with Vault unreachable: err = %v, want a transient error", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "unused-token") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s error is not one safe line: %q", name, err)
		}
	}
}

func TestKeysAndMounts(t *testing.T) {
	mount := mountKV(t, "2")
	b := newBackend(t)
	for _, key := range []string{"", "nomount", "/lead", "trail/", "a//b", "a/../b", "a/./b", "a/b\nc"} {
		if _, err := b.Load(ctxFor(t), key); err == nil || errors.Is(err, provider.ErrNotFound) || provider.IsTransient(err) {
			t.Errorf("Load(%q): err = %v, want a permanent key error", key, err)
		}
	}
	// The mount itself is not a secret.
	if _, err := b.Load(ctxFor(t), mount); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Errorf("Load(mount): err = %v, want an error saying the key names the mount", err)
	}
	// Vault answers 403 for a path under no mount, so that mounts cannot be
	// discovered by probing.
	_, err := b.Load(ctxFor(t), randomName("no-such-mount")+"/x")
	if !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), "no secrets engine") {
		t.Errorf("Load under no mount: err = %v, want ErrPermission saying no engine was found", err)
	}
	// A non-KV engine is refused.
	c := rootClient(t)
	other := randomName("credhelper-test/transit")
	if err := c.Sys().MountWithContext(ctxFor(t), other, &api.MountInput{Type: "cubbyhole"}); err == nil {
		t.Cleanup(func() { c.Sys().Unmount(other) })
		if _, err := b.Load(ctxFor(t), other+"/x"); !errors.Is(err, provider.ErrUnsupported) {
			t.Errorf("Load on a non-KV engine: err = %v, want ErrUnsupported", err)
		}
	}
}

// TestSealedIsTransient starts a second vaultdev of its own (sealing the
// shared one would break other packages' tests), seals it, and expects the
// backend to report a transient error.
func TestSealedIsTransient(t *testing.T) {
	requireVault(t)
	bin, err := filepath.Abs("../../bin/vaultdev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not built: run the tests through scripts/testenv.sh, which builds it", bin)
	}
	out := filepath.Join(t.TempDir(), "vault.json")
	cmd := exec.Command(bin, "-out", out, "-log-level", "off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	var info struct{ Addr, Token string }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(out); err == nil && json.Unmarshal(b, &info) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second vaultdev did not start within 30s")
		}
	}
	client, err := api.NewClient(&api.Config{Address: info.Addr, MaxRetries: 0})
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(info.Token)
	if err := client.Sys().MountWithContext(ctxFor(t), "kv2", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	waitKVReady(t, client, "kv2")
	b, err := vault.New(client)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := b.CompareAndSwap(ctxFor(t), "kv2/creds/x", "", backendtest.Value("before-seal"))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Sys().SealWithContext(ctxFor(t)); err != nil {
		t.Fatalf("seal: %v", err)
	}
	_, err = b.Load(ctxFor(t), "kv2/creds/x")
	if !provider.IsTransient(err) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Load from a sealed Vault: err = %v, want a transient error saying it is sealed", err)
	}
	_, err = b.CompareAndSwap(ctxFor(t), "kv2/creds/x", ver, backendtest.Value("after-seal"))
	if !provider.IsTransient(err) || errors.Is(err, provider.ErrConflict) {
		t.Fatalf("CompareAndSwap to a sealed Vault: err = %v, want a transient error", err)
	}
}
