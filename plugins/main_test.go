package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

// Environment of this package's test processes.
const (
	// envBinDir names the directory holding the plugin binaries TestMain
	// built, so re-executed test processes reuse them.
	envBinDir = "CREDHELPER_PLUGINS_TEST_BIN"
	// envHostChild makes the test binary act as a plugin host that the
	// test then SIGKILLs (see TestHostKilled).
	envHostChild = "CREDHELPER_PLUGINS_TEST_HOST"
)

// binDir is where TestMain put the plugin binaries.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(envHostChild) != "" {
		hostChild()
		return
	}
	binDir = os.Getenv(envBinDir)
	if binDir != "" || backendtest.IsChild() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "plugins-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for name, pkg := range map[string]string{
		"fileplugin":      "github.com/credhelper/credhelper/examples/fileplugin",
		"testplugin":      "github.com/credhelper/credhelper/plugins/internal/testplugin",
		"devissuerplugin": "github.com/credhelper/credhelper/examples/devissuerplugin",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "plugins: building the %s test plugin: %v\n", name, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	os.Setenv(envBinDir, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary returns the path and hex SHA-256 of a test plugin binary.
func binary(t testing.TB, name string) (string, string) {
	t.Helper()
	path := filepath.Join(binDir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("test plugin %s: %v (TestMain builds it)", name, err)
	}
	sum := sha256.Sum256(data)
	return path, hex.EncodeToString(sum[:])
}

// open opens a test plugin binary pinned by its checksum and closes it
// when the test ends.
func open(t testing.TB, name string, args []string, optFns ...func(*Options)) *Plugin {
	t.Helper()
	path, sum := binary(t, name)
	p, err := Open(Spec{Path: path, SHA256: sum, Args: args}, optFns...)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// backendOf opens p's backend or fails the test.
func backendOf(t testing.TB, p *Plugin) provider.Backend {
	t.Helper()
	b, err := p.Backend(ctxFor(t, 20*time.Second))
	if err != nil {
		t.Fatalf("Backend: %v", err)
	}
	return b
}

// issuerOf opens p's issuer or fails the test.
func issuerOf(t testing.TB, p *Plugin) provider.Issuer {
	t.Helper()
	i, err := p.Issuer(ctxFor(t, 20*time.Second))
	if err != nil {
		t.Fatalf("Issuer: %v", err)
	}
	return i
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer is a concurrency-safe buffer for a test's slog output.
type logBuffer struct{ testexec.Buffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: levelTrace}))
}

// hostChild is the test binary acting as a plugin host: it starts the test
// plugin, prints its pid and waits to be killed.
func hostChild() {
	path := filepath.Join(os.Getenv(envBinDir), "testplugin")
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	sum := sha256.Sum256(data)
	p, err := Open(Spec{Path: path, SHA256: hex.EncodeToString(sum[:])}, func(o *Options) {
		o.noDeathSignal = os.Getenv(envHostChild) == "watch-only"
	})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	b, err := p.Backend(context.Background())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	e, err := b.Load(context.Background(), "pid")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("PLUGINPID %s\n", e.Value)
	io.Copy(io.Discard, os.Stdin) // until killed
	time.Sleep(time.Hour)
}
