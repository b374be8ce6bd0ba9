package lifetimes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// binDir holds the credhelper front and credhelper-full, built once.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lifetimes-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testexec.BuildCredhelper(dir, nil); err != nil {
		fmt.Fprintf(os.Stderr, "lifetimes: %v\n", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// world is one test's private HOME, config and state, and a dev issuer
// whose clock can be set back to mint pairs "in the past".
type world struct {
	t      *testing.T
	dir    string
	env    []string
	srv    *dev.Server
	offset atomic.Int64 // added to the dev issuer's clock
}

func newWorld(t *testing.T, optFns ...func(*dev.Options)) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	for _, d := range []string{"home", "config", "state", "run"} {
		if err := os.MkdirAll(filepath.Join(w.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(w.dir, "home"),
		"XDG_CONFIG_HOME=" + filepath.Join(w.dir, "config"),
		"XDG_STATE_HOME=" + filepath.Join(w.dir, "state"),
		"XDG_RUNTIME_DIR=" + filepath.Join(w.dir, "run"),
		"TMPDIR=" + os.TempDir(),
		"CREDHELPER_CLIENT_SECRET=" + dev.DefaultClientSecret,
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", append([]func(*dev.Options){func(o *dev.Options) {
		o.Clock = func() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) }
	}}, optFns...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w.srv = srv
	return w
}

// mintAgo mints a pair of lifetime on the dev issuer as if ago had passed
// since: it has lifetime-ago left now.
func (w *world) mintAgo(lifetime, ago time.Duration) provider.Pair {
	w.t.Helper()
	w.offset.Store(int64(-ago))
	defer w.offset.Store(0)
	p, err := w.srv.Mint(provider.GenerateRequest{Lifetime: lifetime})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// store writes rec to a credential file of the world, as credhelper put
// would, and returns the --backend value.
func (w *world) store(name string, rec *provider.Record) string {
	w.t.Helper()
	path := filepath.Join(w.dir, name+".json")
	b, err := file.New()
	if err != nil {
		w.t.Fatal(err)
	}
	v, err := rec.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	var expected provider.Version
	if e, err := b.Load(context.Background(), path); err == nil {
		expected = e.Version
	}
	if _, err := b.CompareAndSwap(context.Background(), path, expected, v); err != nil {
		w.t.Fatal(err)
	}
	return "file:" + path
}

// record reads back the record behind a file: backend value.
func (w *world) record(backend string) *provider.Record {
	w.t.Helper()
	data, err := os.ReadFile(strings.TrimPrefix(backend, "file:"))
	if err != nil {
		w.t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(data)
	if err != nil {
		w.t.Fatal(err)
	}
	return rec
}

// waitGeneration waits up to 20 s for the record behind backend to reach
// generation gen (a background refresher carries due refreshes through
// after the command that served the pair has exited) and returns it.
func (w *world) waitGeneration(backend string, gen uint64) *provider.Record {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec := w.record(backend)
		if rec.Pair.Generation >= gen || time.Now().After(deadline) {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refresherLog is what the background refreshers of this world logged.
func (w *world) refresherLog() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "state", "credhelper", "refresher", "refresher.log"))
	return string(b)
}

// rawRecord reads the stored JSON object, to check field names.
func (w *world) rawRecord(backend string) map[string]any {
	w.t.Helper()
	data, err := os.ReadFile(strings.TrimPrefix(backend, "file:"))
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

func (w *world) oauth2Flags() []string {
	return []string{"--issuer", "oauth2:" + w.srv.TokenURL(), "--client-id", dev.DefaultClientID, "--client-secret-env", "CREDHELPER_CLIENT_SECRET"}
}

func (w *world) momentoFlags() []string {
	return []string{"--issuer", "dev:" + w.srv.Addr()}
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// run runs a binary of binDir with the world's environment plus env.
func (w *world) run(bin string, env []string, stdin string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...)
	cmd.Env = append(append([]string(nil), w.env...), env...)
	cmd.Dir = w.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return r
}

func (w *world) credhelper(args ...string) result {
	w.t.Helper()
	return w.run("credhelper", nil, "", args...)
}

func (r result) want(t *testing.T, what string, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

func (r result) wantOut(t *testing.T, what, stdout string) result {
	t.Helper()
	if r.stdout != stdout {
		t.Fatalf("%s: stdout %q, want %q (stderr: %s)", what, r.stdout, stdout, r.stderr)
	}
	return r
}

func (r result) wantErr(t *testing.T, what string, parts ...string) result {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Fatalf("%s: stderr %q does not say %q", what, r.stderr, p)
		}
	}
	return r
}

// noSecrets checks that no token of the pairs shows on stderr.
func (r result) noSecrets(t *testing.T, what string, pairs ...provider.Pair) result {
	t.Helper()
	for _, p := range pairs {
		for _, s := range []string{p.AuthToken, p.RefreshToken} {
			if s != "" && strings.Contains(r.stderr, s) {
				t.Fatalf("%s: stderr leaks a token: %s", what, r.stderr)
			}
		}
	}
	return r
}

// near reports whether a and b are within d of each other.
func near(a, b time.Time, d time.Duration) bool {
	diff := a.Sub(b)
	return diff < d && diff > -d
}
