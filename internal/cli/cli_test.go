package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// Distinctive secrets: no error, log line or status output may contain them.
const (
	secretKey     = "SECRET-AUTH-5a1e7c0ffee"
	secretRefresh = "SECRET-REFRESH-9b2d4beef"
)

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in process with an isolated config and state.
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"credhelper"}, args...), strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func isolate(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() { testexec.StopDetached(dir) })
	t.Setenv("CREDHELPER_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	for _, v := range []string{"CREDHELPER_PROFILE", "CREDHELPER_BACKEND", "CREDHELPER_ISSUER", "CREDHELPER_ENDPOINT"} {
		t.Setenv(v, "")
	}
	return dir
}

func noSecrets(t *testing.T, r result, where string) {
	t.Helper()
	for _, s := range []string{secretKey, secretRefresh} {
		if strings.Contains(r.stderr, s) {
			t.Errorf("%s: stderr leaks a secret: %q", where, r.stderr)
		}
	}
}

func record(key, refresh string, validUntil int64) string {
	return fmt.Sprintf(`{"apiKey":%q,"refreshToken":%q,"validUntil":%d,"endpoint":"cell-1.example.com","rotation":"kept"}`, key, refresh, validUntil)
}

func TestPutGetStatus(t *testing.T) {
	dir := isolate(t)
	path := filepath.Join(dir, "cred.json")
	be := "--backend=file:" + path
	r := cli(t, record(secretKey, secretRefresh, 0), "put", be)
	if r.code != 0 {
		t.Fatalf("put: exit %d: %s", r.code, r.stderr)
	}
	noSecrets(t, r, "put")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	r = cli(t, "", "get", be)
	if r.code != 0 || r.stdout != secretKey+"\n" {
		t.Fatalf("get: exit %d, stdout %q, want the token and one newline; stderr %s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, "", "status", be)
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"valid", "generation:   0", "cell-1.example.com", "never"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, secretKey) || strings.Contains(r.stdout, secretRefresh) {
		t.Fatalf("status prints a token:\n%s", r.stdout)
	}
	r = cli(t, "", "status", be, "--json")
	var s map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s["neverExpires"] != true {
		t.Fatalf("status --json = %s (%v)", r.stdout, err)
	}
	// A second put continues the generation and keeps unknown fields.
	r = cli(t, record("other-key", "other-refresh", 0), "put", be)
	if r.code != 0 {
		t.Fatalf("second put: %s", r.stderr)
	}
	data, _ := os.ReadFile(path)
	rec, err := provider.DecodeRecord(data)
	if err != nil || rec.Pair.Generation != 1 {
		t.Fatalf("after a second put: generation %v, err %v; want 1", rec.Pair.Generation, err)
	}
	if _, ok := rec.Extra("rotation"); !ok {
		t.Error("put dropped an unknown field")
	}
	// A valid pair under min_validity: status says what get will do.
	r = cli(t, record("short-key", "short-refresh", time.Now().Add(30*time.Second).Unix()), "put", be)
	if r.code != 0 {
		t.Fatalf("third put: %s", r.stderr)
	}
	if r = cli(t, "", "status", be); r.code != 0 || !strings.Contains(r.stdout, "valid, but with less than min_validity (1m0s) left: get refreshes it first") {
		t.Errorf("status of a pair with 30s left: exit %d:\n%s", r.code, r.stdout)
	}
	if r = cli(t, "", "status", be, "--min-validity", "10s"); !strings.Contains(r.stdout, "status:       valid\n") {
		t.Errorf("status --min-validity 10s of a pair with 30s left:\n%s", r.stdout)
	}
}

func TestPutRefusesBadInput(t *testing.T) {
	dir := isolate(t)
	path := filepath.Join(dir, "cred.json")
	good := record(secretKey, secretRefresh, 0)
	if r := cli(t, good, "put", "--backend=file:"+path); r.code != 0 {
		t.Fatal(r.stderr)
	}
	before, _ := os.ReadFile(path)
	future := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		name, stdin string
	}{
		{"empty", ""},
		{"garbage", "\x00\x01garbage " + secretKey},
		{"malformed json", `{"apiKey": "` + secretKey + `", `},
		{"wrong type", fmt.Sprintf(`{"apiKey":%q,"refreshToken":%q,"validUntil":"soon"}`, secretKey, secretRefresh)},
		{"negative", record(secretKey, secretRefresh, -5)},
		{"milliseconds", record(secretKey, secretRefresh, time.Now().UnixMilli())},
		{"empty token", record("", secretRefresh, future)},
		{"no refresh token", record(secretKey, "", future)},
		{"expired", record(secretKey, secretRefresh, time.Now().Add(-time.Hour).Unix())},
		{"array", `["` + secretKey + `"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, tt.stdin, "put", "--backend=file:"+path)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (usage error); stderr %q", r.code, r.stderr)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 || !strings.HasPrefix(r.stderr, "credhelper: ") {
				t.Errorf("error is not one 'credhelper: ' line: %q", r.stderr)
			}
			noSecrets(t, r, tt.name)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatal("the stored credential changed")
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	dir := isolate(t)
	readable := filepath.Join(dir, "readable.json")
	os.WriteFile(readable, []byte(record(secretKey, secretRefresh, 0)), 0o644)
	expired := filepath.Join(dir, "expired.json")
	os.WriteFile(expired, []byte(record(secretKey, secretRefresh, time.Now().Add(-time.Minute).Unix())), 0o600)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(record(secretKey, secretRefresh, 0)), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{"get", "--backend=file:" + filepath.Join(dir, "none.json")}, 1, "credhelper put"},
		{"world readable", []string{"get", "--backend=file:" + readable}, 1, "chmod 600"},
		{"expired", []string{"get", "--backend=file:" + expired}, 1, "credhelper generate"},
		{"unknown scheme", []string{"get", "--backend=s3:bucket"}, 2, `--backend: "s3:bucket" has no backend scheme this command knows: use file:PATH, env:PREFIX`},
		{"no backend", []string{"get"}, 2, "--backend"},
		{"unknown issuer", []string{"get", "--backend=file:" + good, "--issuer=ldap:x"}, 2, `--issuer: "ldap:x" has no issuer scheme this command knows: use dev:HOST:PORT`},
		{"wrong endpoint", []string{"get", "--backend=file:" + good, "--endpoint=cell-2.example.com"}, 1, "cell-2.example.com"},
		{"unknown flag", []string{"get", "--frobnicate"}, 2, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"missing config", []string{"get", "--config=" + filepath.Join(dir, "nope.toml"), "--backend=file:" + good}, 2, "nope.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout on error: %q", r.stdout)
			}
			noSecrets(t, r, tt.name)
		})
	}
	// The mismatch names both endpoints.
	r := cli(t, "", "get", "--backend=file:"+good, "--endpoint=cell-2.example.com")
	if !strings.Contains(r.stderr, "cell-1.example.com") {
		t.Errorf("endpoint mismatch does not name the credential's endpoint: %s", r.stderr)
	}
}

func TestConfigProfiles(t *testing.T) {
	dir := isolate(t)
	path := filepath.Join(dir, "cred.json")
	os.WriteFile(path, []byte(record(secretKey, secretRefresh, 0)), 0o600)
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[profiles.app]\nbackend = %q\n", "file:"+path)), 0o600)
	t.Setenv("CREDHELPER_CONFIG", cfg)
	if r := cli(t, "", "get", "--profile", "app"); r.code != 0 || r.stdout != secretKey+"\n" {
		t.Fatalf("get --profile app: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "", "get", "--profile", "nope"); r.code != 2 || !strings.Contains(r.stderr, "app") {
		t.Fatalf("unknown profile: %d %q, want exit 2 listing the profiles", r.code, r.stderr)
	}
	os.WriteFile(cfg, []byte("[profiles.app]\nbackendd = \"file:x\"\n"), 0o600)
	if r := cli(t, "", "get", "--profile", "app"); r.code != 2 || !strings.Contains(r.stderr, "backendd") {
		t.Fatalf("misspelt setting: %d %q, want exit 2 naming it", r.code, r.stderr)
	}
}

func TestGenerateAndRefreshWithDevIssuer(t *testing.T) {
	dir := isolate(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cred.json")
	be, is := "--backend=file:"+path, "--issuer=dev:"+srv.Addr()
	t.Setenv("DEV_SESSION", srv.SessionToken())

	if r := cli(t, "", "generate", be, is, "--session-token-env=DEV_SESSION"); r.code != 2 {
		t.Fatalf("generate without --ttl/--never: exit %d, want 2", r.code)
	}
	// "0s" is a lifetime given, not a missing one, and never a silent
	// "never expires".
	for args, want := range map[string]string{
		"--ttl=0s":         "--ttl 0s: the lifetime must be longer than zero",
		"--ttl=0s --never": "give --ttl DURATION or --never, not both",
		"--ttl=-5m":        `--ttl: "-5m" is negative`,
		"--ttl=soon":       `--ttl: "soon" is not a duration`,
	} {
		r := cli(t, "", append([]string{"generate", be, is, "--session-token-env=DEV_SESSION"}, strings.Fields(args)...)...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("generate %s: exit %d, %q; want 2 and %q", args, r.code, r.stderr, want)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("generate %s wrote %s (%v)", args, path, err)
		}
	}
	if r := cli(t, "", "generate", be, is, "--session-token-env=NOT_SET_ANYWHERE", "--ttl=1h"); r.code != 2 || !strings.Contains(r.stderr, "NOT_SET_ANYWHERE") {
		t.Fatalf("generate with an unset variable: %d %q", r.code, r.stderr)
	}
	r := cli(t, "", "generate", be, is, "--session-token-env=DEV_SESSION", "--ttl=1h")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("generate: exit %d, stdout %q (a stored pair must not be printed), stderr %s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, "", "generate", is, "--session-token-env=DEV_SESSION", "--never", "--out=-")
	rec, err := provider.DecodeRecord([]byte(strings.TrimSpace(r.stdout)))
	if r.code != 0 || err != nil || !rec.Pair.Never() {
		t.Fatalf("generate --out -: exit %d, %v, %q", r.code, err, r.stderr)
	}
	first := cli(t, "", "get", be, is).stdout
	r = cli(t, "", "refresh", "--force", be, is)
	if r.code != 0 || !strings.Contains(r.stdout, "generation:   1") {
		t.Fatalf("refresh --force: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	second := cli(t, "", "get", be, is).stdout
	if first == second || second == "" {
		t.Fatal("refresh --force did not change the token")
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
		t.Fatalf("issuer stats %+v, want exactly one refresh and no reuse", st)
	}
}

func TestVersion(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := cli(t, "", args...); r.code != 0 || !strings.HasPrefix(r.stdout, "credhelper ") {
			t.Fatalf("%v: %d %q", args, r.code, r.stdout)
		}
	}
}
