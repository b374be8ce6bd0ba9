package plugins

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// TestConformanceFilePlugin runs the backend conformance suite against the
// file backend served by examples/fileplugin, including the multi-process
// race, whose child processes each open the plugin too.
func TestConformanceFilePlugin(t *testing.T) {
	backendtest.Run(t, backendtest.Config{
		New: func(t testing.TB) provider.Backend {
			return backendOf(t, open(t, "fileplugin", nil))
		},
		Key: func(t testing.TB) string { return filepath.Join(t.TempDir(), "cred.json") },
	})
}

// TestIssuerRoundTrip checks that every field of a pair crosses the
// boundary both ways: the test plugin moves each time it is given.
func TestIssuerRoundTrip(t *testing.T) {
	iss := issuerOf(t, open(t, "testplugin", nil))
	ctx := ctxFor(t, 10*time.Second)
	in := provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Unix(1_700_000_000, 0), Endpoint: "cell.example", Generation: 7,
		RefreshValidUntil: time.Unix(1_800_000_000, 0), IssuedAt: time.Unix(1_699_990_000, 0)}
	got, err := iss.Refresh(ctx, in)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	want := provider.Pair{AuthToken: "a+", RefreshToken: "r+", ValidUntil: time.Unix(1_700_003_600, 0), Endpoint: "cell.example", Generation: 7,
		RefreshValidUntil: time.Unix(1_800_086_400, 0), IssuedAt: time.Unix(1_699_993_600, 0)}
	if got != want {
		t.Errorf("Refresh = %#v (refresh valid until %v, issued at %v), want %#v (%v, %v)", got, got.RefreshValidUntil, got.IssuedAt, want, want.RefreshValidUntil, want.IssuedAt)
	}
	// Unknown times stay unknown, and "never" stays never.
	never, err := iss.Refresh(ctx, provider.Pair{AuthToken: "a"})
	if err != nil || !never.Never() || !never.RefreshValidUntil.IsZero() || !never.IssuedAt.IsZero() {
		t.Errorf("Refresh of a never-expiring pair without times = %v (refresh valid until %v, issued at %v), %v; want all times zero", never, never.RefreshValidUntil, never.IssuedAt, err)
	}
	// A time before 1970 is not taken for "unknown" on the wire.
	old, err := iss.Refresh(ctx, provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Unix(1_700_000_000, 0), IssuedAt: time.Unix(-5, 0)})
	if err != nil || old.IssuedAt.IsZero() {
		t.Errorf("Refresh of a pair issued before 1970 = issued at %v, %v; want a set time", old.IssuedAt, err)
	}
	gen, err := iss.(provider.Generator).Generate(ctx, provider.GenerateRequest{Lifetime: time.Hour, Description: "d", Scope: provider.Scope{Caches: []string{"c1", "c2"}}})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if gen.AuthToken != "auth-d" || gen.Endpoint != "c1,c2" || !gen.ValidUntil.Equal(time.Unix(1_000_003_600, 0)) {
		t.Errorf("Generate = %v, want the request's fields carried through", gen)
	}
}

func TestServesOnlyWhatItHas(t *testing.T) {
	for _, tc := range []struct {
		serve, missing string
		open           func(context.Context, *Plugin) error
	}{
		{"backend", "issuer", func(ctx context.Context, p *Plugin) error { _, err := p.Issuer(ctx); return err }},
		{"issuer", "backend", func(ctx context.Context, p *Plugin) error { _, err := p.Backend(ctx); return err }},
	} {
		t.Run(tc.serve, func(t *testing.T) {
			err := tc.open(ctxFor(t, 10*time.Second), open(t, "testplugin", []string{"-serve=" + tc.serve}))
			if !errors.Is(err, provider.ErrUnsupported) || !strings.Contains(err.Error(), "serves no "+tc.missing) {
				t.Errorf("opening the %s of a %s-only plugin: err = %v, want ErrUnsupported saying it serves no %s", tc.missing, tc.serve, err, tc.missing)
			}
		})
	}
}

func TestBackendCapabilities(t *testing.T) {
	b := backendOf(t, open(t, "fileplugin", nil))
	if ro, ok := b.(provider.ReadOnlyBackend); !ok || ro.ReadOnly() {
		t.Errorf("file backend plugin: ReadOnlyBackend %v, says read-only; want a ReadOnlyBackend that is not", ok)
	}
	wc, ok := b.(provider.WriteChecker)
	if !ok {
		t.Fatalf("the file backend checks writes, but its plugin's backend is no WriteChecker")
	}
	dir := t.TempDir()
	if err := wc.CheckWrite(ctxFor(t, 10*time.Second), filepath.Join(dir, "cred.json")); err != nil {
		t.Errorf("CheckWrite in a writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if os.Getuid() != 0 { // root writes anywhere
		if err := wc.CheckWrite(ctxFor(t, 10*time.Second), filepath.Join(dir, "cred.json")); err == nil {
			t.Errorf("CheckWrite in a read-only directory succeeded")
		}
	}
}

func TestChecksumMismatchRefused(t *testing.T) {
	path, sum := binary(t, "testplugin")
	wrong := strings.Repeat("0", 64)
	_, err := Open(Spec{Path: path, SHA256: wrong})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Open with a wrong checksum: err = %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), sum) {
		t.Errorf("error %q does not name the expected (%s) and actual (%s) digests", err, wrong, sum)
	}
	if _, err := Open(Spec{Path: path}); err == nil || !strings.Contains(err.Error(), "sha256sum") {
		t.Errorf("Open without a checksum: err = %v, want a refusal saying how to pin", err)
	}

	// A binary replaced after Open is refused at start.
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "plugin")
	copyFile(t, path, copyPath, 0o755)
	p, err := Open(Spec{Path: copyPath, SHA256: sum})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	copyFile(t, filepath.Join(binDir, "fileplugin"), copyPath, 0o755)
	if _, err := p.Backend(ctxFor(t, 10*time.Second)); !errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("Backend after the binary was replaced: err = %v, want ErrChecksumMismatch", err)
	}
	if p.PID() != 0 {
		t.Errorf("a replaced binary was started")
	}
}

func TestUnsafeBinaryRefused(t *testing.T) {
	path, sum := binary(t, "testplugin")
	for _, tc := range []struct {
		name     string
		mode     os.FileMode
		dirMode  os.FileMode
		asDir    bool
		wantText string
	}{
		{name: "group-writable", mode: 0o775, dirMode: 0o700, wantText: "writable by group or others"},
		{name: "world-writable", mode: 0o757, dirMode: 0o700, wantText: "writable by group or others"},
		{name: "directory", dirMode: 0o700, asDir: true, wantText: "not a regular file"},
		{name: "writable-directory", mode: 0o755, dirMode: 0o777, wantText: "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, "plugin")
			if tc.asDir {
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
			} else {
				copyFile(t, path, target, tc.mode)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Spec{Path: target, SHA256: sum})
			if !errors.Is(err, ErrUnsafeBinary) || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Open: err = %v, want ErrUnsafeBinary saying %q", err, tc.wantText)
			}
		})
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(to)
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func pluginPID(t testing.TB, b provider.Backend) int {
	t.Helper()
	e, err := b.Load(ctxFor(t, 10*time.Second), "pid")
	if err != nil {
		t.Fatalf("Load pid: %v", err)
	}
	pid, err := strconv.Atoi(string(e.Value))
	if err != nil {
		t.Fatalf("pid %q: %v", e.Value, err)
	}
	return pid
}

// killDuringCall SIGKILLs the plugin while call blocks in it and returns
// the call's error.
func killDuringCall(t *testing.T, p *Plugin, call func(ctx context.Context) error) error {
	t.Helper()
	pid := pluginPID(t, backendOf(t, p))
	errc := make(chan error, 1)
	go func() { errc <- call(ctxFor(t, 30*time.Second)) }()
	time.Sleep(300 * time.Millisecond) // let the call reach the plugin
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin: %v", err)
	}
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("the call did not return after its plugin was killed")
		return nil
	}
}

func TestPluginKilledMidCall(t *testing.T) {
	p := open(t, "testplugin", nil)
	b, iss := backendOf(t, p), issuerOf(t, p)
	first := pluginPID(t, b)
	err := killDuringCall(t, p, func(ctx context.Context) error {
		_, err := b.Load(ctx, "block")
		return err
	})
	if err == nil || !provider.IsTransient(err) || errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("Load in flight when the plugin was killed: err = %v, want transient, not ErrNotDelivered", err)
	}
	if !strings.Contains(err.Error(), "crashed or was killed during the call") {
		t.Errorf("error %q does not say the plugin died during the call", err)
	}
	second := pluginPID(t, b)
	if second == first {
		t.Errorf("plugin pid %d after restart, want a new process", second)
	}

	// A refresh in flight may have spent the token: never "not delivered".
	err = killDuringCall(t, p, func(ctx context.Context) error {
		_, err := iss.Refresh(ctx, provider.Pair{AuthToken: "a", RefreshToken: "block"})
		return err
	})
	if err == nil || !provider.IsTransient(err) || errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("Refresh in flight when the plugin was killed: err = %v, want transient, not ErrNotDelivered", err)
	}
	if !strings.Contains(err.Error(), "may have been spent") {
		t.Errorf("error %q does not say the refresh token may have been spent", err)
	}
	if _, err := iss.Refresh(ctxFor(t, 10*time.Second), provider.Pair{AuthToken: "a", RefreshToken: "r"}); err != nil {
		t.Errorf("Refresh after the restart: %v", err)
	}
}

func TestPluginCrashBetweenCalls(t *testing.T) {
	p := open(t, "testplugin", nil)
	b := backendOf(t, p)
	first := pluginPID(t, b)
	syscall.Kill(first, syscall.SIGKILL)
	// Between calls: wait until the host could know (the exit is
	// reported to the parent a moment after the process stops running).
	for deadline := time.Now().Add(5 * time.Second); !processExited(first); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("killed plugin %d not reported exited", first)
		}
	}
	if second := pluginPID(t, b); second == first {
		t.Errorf("the dead plugin was not restarted")
	}
}

func TestCloseKillsPlugin(t *testing.T) {
	p := open(t, "testplugin", nil)
	b := backendOf(t, p)
	pid := pluginPID(t, b)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitGone(t, pid)
	if _, err := b.Load(ctxFor(t, time.Second), "pid"); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: err = %v, want ErrClosed", err)
	}
	if _, err := p.Backend(ctxFor(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("Backend after Close: err = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// gone reports whether pid no longer runs (a zombie counts as gone).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still runs 5s later", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostKilled SIGKILLs a host process that runs a plugin and checks that
// the plugin dies within a few seconds: with the parent-death signal, and
// with only the plugin's own watch of its stdin and parent.
func TestHostKilled(t *testing.T) {
	for _, mode := range []string{"pdeathsig", "watch-only"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envHostChild+"="+mode)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				cmd.Process.Kill()
				t.Fatalf("host child printed nothing: %v", err)
			}
			pidText, ok := strings.CutPrefix(strings.TrimSpace(line), "PLUGINPID ")
			pid, err := strconv.Atoi(pidText)
			if !ok || err != nil {
				cmd.Process.Kill()
				t.Fatalf("host child said %q, want PLUGINPID n", line)
			}
			if gone(pid) {
				t.Fatalf("plugin %d is not running before the host is killed", pid)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			start := time.Now()
			waitGone(t, pid)
			t.Logf("plugin %d gone %v after its host was SIGKILLed", pid, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestDeadlinePropagates(t *testing.T) {
	b := backendOf(t, open(t, "testplugin", nil)) // started: the deadline below is the call's alone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := b.Load(ctx, "deadline")
	if err != nil {
		t.Fatalf("Load deadline: %v", err)
	}
	ms, err := strconv.Atoi(string(e.Value))
	if err != nil || ms <= 0 || ms > 5000 {
		t.Fatalf("the plugin saw a deadline %q ms away, want within (0, 5000]", e.Value)
	}
	if e, _ := b.Load(context.Background(), "deadline"); string(e.Value) != "none" {
		t.Errorf("without a host deadline the plugin saw %q, want none", e.Value)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	_, err = b.Load(short, "block")
	if !errors.Is(err, context.DeadlineExceeded) || !provider.IsTransient(err) {
		t.Errorf("Load past its deadline: err = %v, want transient context.DeadlineExceeded", err)
	}

	// Cancellation reaches the plugin's context.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, ccancel)
	if _, err := b.Load(cctx, "block"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Load: err = %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, err := b.Load(context.Background(), "lastcancel")
		if err == nil && string(e.Value) == context.Canceled.Error() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's context was not cancelled: last = %q, %v", e.Value, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHandshakeIsFirstOnStdout runs the example plugin as a host would and
// checks that the first thing on its stdout is the go-plugin handshake.
func TestHandshakeIsFirstOnStdout(t *testing.T) {
	path, _ := binary(t, "fileplugin")
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), Handshake.MagicCookieKey+"="+Handshake.MagicCookieValue, "PLUGIN_PROTOCOL_VERSIONS=1", envWatchStdin+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	stdin.Close() // the plugin exits when its stdin closes
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Errorf("the plugin did not exit when its stdin closed")
	}
	if err != nil {
		t.Fatalf("reading the handshake: %v", err)
	}
	if !handshakeLine.MatchString(line) || !strings.Contains(line, "|grpc|") {
		t.Errorf("first stdout line %q is not a gRPC go-plugin handshake", line)
	}
}

func TestStdoutBeforeHandshakeRefused(t *testing.T) {
	const secret = "SECRET-TOKEN-do-not-print"
	var logs logBuffer
	p := open(t, "testplugin", []string{"-stdout-before=" + secret}, func(o *Options) { o.Logger = logs.logger() })
	_, err := p.Backend(ctxFor(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "wrote to stdout before its handshake") {
		t.Fatalf("opening a plugin that printed to stdout: err = %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error repeats what the plugin printed: %v", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the host's log repeats what the plugin printed")
	}
}

func TestStderrForwardedToLogger(t *testing.T) {
	var logs logBuffer
	p := open(t, "testplugin", nil, func(o *Options) { o.Logger = logs.logger() })
	pluginPID(t, backendOf(t, p))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "testplugin starting") {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's stderr log line did not reach the host logger; got:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "testplugin starting") && !strings.Contains(l, "level=INFO") {
			t.Errorf("plugin info line forwarded at another level: %s", l)
		}
	}
}

func TestUnpinnedNeedsOptIn(t *testing.T) {
	path, sum := binary(t, "testplugin")
	var logs logBuffer
	p, err := Open(Spec{Path: path}, func(o *Options) { o.AllowUnpinned = true; o.Logger = logs.logger() })
	if err != nil {
		t.Fatalf("Open unpinned with AllowUnpinned: %v", err)
	}
	defer p.Close()
	if !strings.Contains(logs.String(), sum) {
		t.Errorf("the warning about an unpinned plugin does not give its digest")
	}
}

// Compile-time check that the file backend the example serves is what the
// benchmarks compare against.
var _ provider.Backend = (*file.Backend)(nil)
