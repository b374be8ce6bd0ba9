package cli

import (
	"context"
	"fmt"
	"github.com/credhelper/credhelper/internal/testexec"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// binDir holds the credhelper binary built once for the tests that drive it
// through real clients (docker's client library, git, client-go), with
// symlinks named docker-credential-credhelper and git-credential-credhelper.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "credhelper-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Every test runs through the front, as installed.
	if err := testexec.BuildCredhelper(dir, map[string]string{"devissuerplugin": "examples/devissuerplugin"}); err != nil {
		fmt.Fprintf(os.Stderr, "building credhelper for the face tests: %v\n", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// Distinctive tokens of the face tests: no stderr, and no error message on
// docker's stdout, may contain them.
const (
	faceToken   = "FACE-TOKEN-7f3a9c11"
	faceRefresh = "FACE-REFRESH-0d6e2b77"
)

// faceWorld is an isolated configuration for the built binary: a config
// file, state and runtime directories, and the environment to run with.
type faceWorld struct {
	dir, config string
	env         []string
}

// newFaceWorld writes config (with %DIR% replaced by the world's directory)
// and points CREDHELPER_CONFIG, XDG_* and HOME into it, for this process
// (t.Setenv, inherited by clients that run the binary) and in w.env.
func newFaceWorld(t *testing.T, config string) *faceWorld {
	t.Helper()
	dir := t.TempDir()
	w := &faceWorld{dir: dir, config: filepath.Join(dir, "config.toml")}
	if err := os.WriteFile(w.config, []byte(strings.ReplaceAll(config, "%DIR%", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	set := map[string]string{
		"CREDHELPER_CONFIG":    w.config,
		"XDG_CONFIG_HOME":      filepath.Join(dir, "xdg-config"),
		"XDG_STATE_HOME":       filepath.Join(dir, "state"),
		"XDG_RUNTIME_DIR":      filepath.Join(dir, "run"),
		"HOME":                 filepath.Join(dir, "home"),
		"CREDHELPER_NO_AGENT":  "1",
		"CREDHELPER_PROFILE":   "",
		"CREDHELPER_BACKEND":   "",
		"CREDHELPER_ISSUER":    "",
		"CREDHELPER_ENDPOINT":  "",
		"CREDHELPER_LOG_LEVEL": "",
		"KUBERNETES_EXEC_INFO": "",
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
	w.env = os.Environ()
	return w
}

// writeRecord stores p under path as the file backend does.
func writeRecord(t *testing.T, path string, p provider.Pair) {
	t.Helper()
	b, err := (&provider.Record{Pair: p}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// neverPair is a never-expiring pair with the distinctive token.
func neverPair() provider.Pair {
	return provider.Pair{AuthToken: faceToken, RefreshToken: faceRefresh, Endpoint: "cell-1.example.com"}
}

// startDev runs the dev issuer in process and mints an expiring pair.
func startDev(t *testing.T) (*dev.Server, provider.Pair) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return srv, p
}

type procResult struct {
	code           int
	stdout, stderr string
}

// runBin runs the built binary (or a symlink to it) with stdin and env.
func runBin(t *testing.T, env []string, stdin, name string, args ...string) procResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return procResult{code, out.String(), errb.String()}
}

// noFaceSecrets fails if any of texts holds a test token.
func noFaceSecrets(t *testing.T, where string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, secret := range []string{faceToken, faceRefresh} {
			if strings.Contains(s, secret) {
				t.Errorf("%s leaks a secret: %q", where, s)
			}
		}
	}
}
