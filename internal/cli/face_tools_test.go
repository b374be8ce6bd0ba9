package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// toolHome is the home directory the test process started with, before
// the face worlds moved HOME: rustup's toolchains live below it.
var toolHome = os.Getenv("HOME")

// tlsServer starts a loopback HTTPS server and writes its certificate,
// which is its own CA, to a PEM file for clients to trust.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// seenTokens records the Authorization values a test server received.
type seenTokens struct {
	mu     sync.Mutex
	auth   []string
	denied int
}

func (s *seenTokens) add(v string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, v)
	if !ok {
		s.denied++
	}
}

func (s *seenTokens) snapshot() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...), s.denied
}

// runTool runs a real client (go, cargo) and fails loudly when it is
// missing.
func runTool(t *testing.T, env []string, dir string, name string, args ...string) procResult {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (on PATH %s): this test drives the real %s; .ci/run puts it on PATH", name, os.Getenv("PATH"), name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Dir = env, dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %v hung: %s", name, args, errb.String())
	}
	return procResult{code, out.String(), errb.String()}
}

// goproxy is a module proxy serving example.com/private/mod v1.0.0 to
// requests whose bearer token accept allows, 401 otherwise.
func goproxy(t *testing.T, accept func(token string) bool, seen *seenTokens) (*httptest.Server, string) {
	t.Helper()
	const mod = "example.com/private/mod"
	gomod := "module " + mod + "\n\ngo 1.22\n"
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, body := range map[string]string{"go.mod": gomod, "mod.go": "package mod\n\nconst Answer = 42\n"} {
		f, err := zw.Create(mod + "@v1.0.0/" + name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"/" + mod + "/@v/list":        []byte("v1.0.0\n"),
		"/" + mod + "/@v/v1.0.0.info": []byte(`{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}`),
		"/" + mod + "/@v/v1.0.0.mod":  []byte(gomod),
		"/" + mod + "/@v/v1.0.0.zip":  zbuf.Bytes(),
	}
	return tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := bearer && accept(tok)
		seen.add(r.Header.Get("Authorization"), ok)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="goproxy"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, found := files[r.URL.Path]
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
}

// goEnv runs the real go command against the proxy with GOAUTH naming the
// built credhelper, in a module cache of its own.
func goEnv(t *testing.T, w *faceWorld, proxyURL, caFile string) []string {
	t.Helper()
	d := t.TempDir()
	env := append([]string{}, w.env...)
	return append(env,
		"GOAUTH="+filepath.Join(binDir, "credhelper")+" goauth",
		"GOPROXY="+proxyURL, "GOSUMDB=off", "GONOSUMDB=*", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOENV=off",
		"GOPRIVATE=", "GONOPROXY=", "GOINSECURE=", "GOWORK=off",
		"GOMODCACHE="+filepath.Join(d, "modcache"), "GOPATH="+filepath.Join(d, "gopath"), "GOCACHE="+filepath.Join(d, "gocache"),
		"SSL_CERT_FILE="+caFile, "SSL_CERT_DIR=",
	)
}

func TestGoAuthWithTheGoCommand(t *testing.T) {
	seen := &seenTokens{}
	srv, caFile := goproxy(t, func(tok string) bool { return tok == faceToken }, seen)
	w := newFaceWorld(t, `
[profiles.mods]
backend = "file:%DIR%/mods.json"
[profiles.mods.goauth]
url_prefixes = ["`+srv.URL+`"]
`)
	writeRecord(t, filepath.Join(w.dir, "mods.json"), neverPair())
	r := runTool(t, goEnv(t, w, srv.URL, caFile), w.dir, "go", "mod", "download", "-json", "example.com/private/mod@v1.0.0")
	if r.code != 0 || !strings.Contains(r.stdout, `"Version": "v1.0.0"`) {
		t.Fatalf("go mod download: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	auth, denied := seen.snapshot()
	if denied != 0 || len(auth) == 0 {
		t.Errorf("proxy saw %d requests, %d denied: the first run's header should cover them all", len(auth), denied)
	}
	noFaceSecrets(t, "go's output", r.stdout, r.stderr)
}

// TestGoAuthRetryRefreshes: the stored token is revoked at the proxy; the
// go command's re-run after the 401 makes credhelper refresh through the
// dev issuer, and the retry carries the new token.
func TestGoAuthRetryRefreshes(t *testing.T) {
	dev, minted := startDev(t)
	seen := &seenTokens{}
	srv, caFile := goproxy(t, func(tok string) bool { return tok != "" && tok != minted.AuthToken }, seen)
	w := newFaceWorld(t, `
[profiles.mods]
backend = "file:%DIR%/mods.json"
issuer = "dev:`+dev.Addr()+`"
[profiles.mods.goauth]
url_prefixes = ["`+srv.URL+`"]
`)
	minted.IssuedAt = time.Now().Add(-10 * time.Minute) // in use a while before it was revoked
	writeRecord(t, filepath.Join(w.dir, "mods.json"), minted)
	env := goEnv(t, w, srv.URL, caFile)
	r := runTool(t, env, w.dir, "go", "mod", "download", "-json", "example.com/private/mod@v1.0.0")
	if r.code != 0 {
		t.Fatalf("go mod download: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	auth, denied := seen.snapshot()
	if denied != 1 || auth[0] != "Bearer "+minted.AuthToken {
		t.Errorf("proxy denied %d of %d requests; want exactly the first, which carried the revoked token", denied, len(auth))
	}
	if st := dev.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("dev issuer %+v: want one refresh, no reuse", st)
	}
	for _, a := range auth[1:] {
		if a == "Bearer "+minted.AuthToken || a == "" {
			t.Errorf("a request after the refresh carried %q", a)
		}
	}
	stored, err := os.ReadFile(filepath.Join(w.dir, "mods.json"))
	if err != nil || strings.Contains(string(stored), minted.AuthToken) {
		t.Errorf("the refreshed pair was not committed to the store: %v", err)
	}

	// A 404 (a module the proxy does not have) re-runs the helper too, but
	// spends no refresh token.
	r = runTool(t, env, w.dir, "go", "mod", "download", "-json", "example.com/private/missing@v1.0.0")
	if r.code == 0 {
		t.Fatal("downloading a missing module succeeded")
	}
	if st := dev.Stats(); st.Refreshes != 1 {
		t.Errorf("a 404 caused a refresh: %+v", st)
	}
}

// cargoRegistry is a sparse registry that requires authentication
// ("auth-required": true) and serves one crate, foo 1.0.0, to requests
// whose Authorization accept allows.
func cargoRegistry(t *testing.T, accept func(auth string) bool, seen *seenTokens) (*httptest.Server, string) {
	t.Helper()
	var srv *httptest.Server
	var caFile string
	srv, caFile = tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		ok := accept(auth)
		seen.add(auth, ok)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Cargo login_url="`+srv.URL+`/login"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/index/config.json":
			w.Write([]byte(`{"dl":"` + srv.URL + `/dl","api":"` + srv.URL + `","auth-required":true}`))
		case "/index/3/f/foo":
			w.Write([]byte(`{"name":"foo","vers":"1.0.0","deps":[],"cksum":"0000000000000000000000000000000000000000000000000000000000000000","features":{},"yanked":false}` + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	return srv, caFile
}

// cargoProject writes a CARGO_HOME naming credhelper as the registry's
// credential provider, and a package depending on foo from it.
func cargoProject(t *testing.T, w *faceWorld, indexURL, caFile string) (env []string, dir string) {
	t.Helper()
	d := t.TempDir()
	home, dir := filepath.Join(d, "cargo-home"), filepath.Join(d, "app")
	for _, p := range []string{home, filepath.Join(dir, "src")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(home, "config.toml"): `[registries.internal]
index = "` + indexURL + `"
credential-provider = ["` + filepath.Join(binDir, "credhelper") + `"]

[http]
cainfo = "` + caFile + `"

[net]
git-fetch-with-cli = false
`,
		filepath.Join(dir, "Cargo.toml"): `[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
foo = { version = "1", registry = "internal" }
`,
		filepath.Join(dir, "src", "main.rs"): "fn main() {}\n",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rustup := os.Getenv("RUSTUP_HOME")
	if rustup == "" {
		rustup = filepath.Join(toolHome, ".rustup")
	}
	env = append(append([]string{}, w.env...), "CARGO_HOME="+home, "RUSTUP_HOME="+rustup, "CARGO_TERM_COLOR=never", "CARGO_NET_RETRY=0")
	return env, dir
}

func TestCargoWithTheCargoCommand(t *testing.T) {
	seen := &seenTokens{}
	srv, caFile := cargoRegistry(t, func(auth string) bool { return auth == faceToken }, seen)
	index := "sparse+" + srv.URL + "/index/"
	w := newFaceWorld(t, `
[profiles.crates]
backend = "file:%DIR%/crates.json"
[profiles.crates.cargo]
registries = ["internal"]
`)
	writeRecord(t, filepath.Join(w.dir, "crates.json"), neverPair())
	env, dir := cargoProject(t, w, index, caFile)
	r := runTool(t, env, dir, "cargo", "generate-lockfile")
	if r.code != 0 {
		t.Fatalf("cargo generate-lockfile: exit %d\n%s", r.code, r.stderr)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
	if err != nil || !strings.Contains(string(lock), "name = \"foo\"\nversion = \"1.0.0\"") {
		t.Fatalf("Cargo.lock lacks foo 1.0.0: %v\n%s", err, lock)
	}
	auth, _ := seen.snapshot()
	sent := 0
	for _, a := range auth {
		if a == faceToken {
			sent++
		}
	}
	if sent == 0 {
		t.Error("cargo never sent the token")
	}
	noFaceSecrets(t, "cargo's output", r.stdout, r.stderr)

	// A registry no profile serves: credhelper says url-not-supported and
	// cargo, with no other provider, says none could handle it.
	w2 := newFaceWorld(t, "[profiles.other.cargo]\nregistries = [\"elsewhere\"]\n")
	env, dir = cargoProject(t, w2, index, caFile)
	r = runTool(t, env, dir, "cargo", "generate-lockfile")
	if r.code == 0 || !strings.Contains(r.stderr, "no credential providers could handle the request") {
		t.Errorf("unserved registry: exit %d\n%s", r.code, r.stderr)
	}

	// A profile that cannot be served: cargo shows credhelper's message.
	w3 := newFaceWorld(t, `
[profiles.crates]
backend = "file:%DIR%/missing.json"
[profiles.crates.cargo]
index_urls = ["`+index+`"]
`)
	env, dir = cargoProject(t, w3, index, caFile)
	r = runTool(t, env, dir, "cargo", "generate-lockfile")
	if r.code == 0 || !strings.Contains(r.stderr, `profile "crates"`) {
		t.Errorf("failing profile: exit %d\n%s", r.code, r.stderr)
	}
	noFaceSecrets(t, "cargo's output", r.stdout, r.stderr)
}

// TestGoAuthRetryWithTheAgent: with an agent serving the revoked token, the
// first go command's 401 re-run refreshes once; a later go command, given
// the same revoked token by the agent (whose pair is not due), is answered
// on its re-run with the pair already in the store, spending nothing.
func TestGoAuthRetryWithTheAgent(t *testing.T) {
	dev, minted := startDev(t)
	seen := &seenTokens{}
	srv, caFile := goproxy(t, func(tok string) bool { return tok != "" && tok != minted.AuthToken }, seen)
	w := newFaceWorld(t, `
[profiles.mods]
backend = "file:%DIR%/mods.json"
issuer = "dev:`+dev.Addr()+`"
[profiles.mods.goauth]
url_prefixes = ["`+srv.URL+`"]
`)
	minted.IssuedAt = time.Now().Add(-10 * time.Minute) // in use a while before it was revoked
	writeRecord(t, filepath.Join(w.dir, "mods.json"), minted)
	stop, agentErr := startFaceAgent(t, w)

	for i := 1; i <= 2; i++ {
		r := runTool(t, goEnv(t, w, srv.URL, caFile), w.dir, "go", "mod", "download", "-json", "example.com/private/mod@v1.0.0")
		if r.code != 0 {
			t.Fatalf("go mod download #%d: exit %d\n%s\n%s", i, r.code, r.stdout, r.stderr)
		}
		if st := dev.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
			t.Errorf("after go command #%d: dev issuer %+v, want exactly one refresh", i, st)
		}
	}
	if _, denied := seen.snapshot(); denied != 2 {
		t.Errorf("proxy denied %d requests; want one per go command (the agent's revoked token)", denied)
	}
	stop() // before reading its log
	noFaceSecrets(t, "agent log", agentErr.String())
}
