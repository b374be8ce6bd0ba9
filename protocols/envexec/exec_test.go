package envexec

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

const secret = "exec-secret-K4-distinctive"

func fixed(tok string) provider.CredentialProvider {
	return provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
		return provider.Pair{AuthToken: tok, Endpoint: "cell-1.example.com"}, nil
	})
}

func newRunner(t *testing.T, src provider.CredentialProvider, optFns ...func(*Options)) (*Runner, *testexec.Buffer, *testexec.Buffer) {
	t.Helper()
	var out, errb testexec.Buffer
	fns := append([]func(*Options){func(o *Options) {
		o.Stdin, o.Stdout, o.Stderr = strings.NewReader(""), &out, &errb
		o.Env = []string{"PATH=" + os.Getenv("PATH"), "MOMENTO_API_KEY=stale"}
	}}, optFns...)
	r, err := New(src, DefaultVars(), fns...)
	if err != nil {
		t.Fatal(err)
	}
	return r, &out, &errb
}

func TestRunEnvAndExitCodes(t *testing.T) {
	r, out, _ := newRunner(t, fixed(secret))
	code, err := r.Run(context.Background(), []string{"sh", "-c", `printf '%s %s %s' "$MOMENTO_API_KEY" "$MOMENTO_ENDPOINT" "$0"; exit 7`, "zero"})
	if err != nil || code != 7 {
		t.Fatalf("got %d, %v; want exit 7", code, err)
	}
	if got := out.String(); got != secret+" cell-1.example.com zero" {
		t.Errorf("child saw %q", got)
	}
	code, err = r.Run(context.Background(), []string{"sh", "-c", "kill -TERM $$; sleep 5"})
	if err != nil || code != 128+int(syscall.SIGTERM) {
		t.Errorf("signalled child: %d, %v; want %d", code, err, 128+int(syscall.SIGTERM))
	}
}

func TestRunCannotExecute(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badInterp := filepath.Join(dir, "badinterp")
	if err := os.WriteFile(badInterp, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var resolved atomic.Int32
	src := provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
		resolved.Add(1)
		return provider.Pair{AuthToken: secret}, nil
	})
	r, _, _ := newRunner(t, src)
	for _, tc := range []struct {
		name string
		argv []string
		code int
	}{
		{"not found", []string{"no-such-command-credhelper-test"}, 127},
		{"missing path", []string{filepath.Join(dir, "missing")}, 127},
		{"not executable", []string{plain}, 126},
		{"directory", []string{dir}, 126},
		{"bad interpreter", []string{badInterp}, 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := r.Run(context.Background(), tc.argv)
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != tc.code {
				t.Fatalf("got %d, %v; want an ExitError with code %d", code, err, tc.code)
			}
			if !strings.Contains(err.Error(), filepath.Base(tc.argv[0])) || strings.Contains(err.Error(), secret) {
				t.Errorf("message %q", err)
			}
		})
	}
	if n := resolved.Load(); n != 1 {
		t.Errorf("resolved the credential %d times, want once (only for the bad interpreter, found on disk)", n)
	}
	if _, err := r.Run(context.Background(), nil); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestRunCredentialError(t *testing.T) {
	r, _, _ := newRunner(t, provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
		return provider.Pair{}, provider.ErrLineageBroken
	}))
	if _, err := r.Run(context.Background(), []string{"true"}); !errors.Is(err, provider.ErrLineageBroken) {
		t.Errorf("got %v", err)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	catchSignals(t, syscall.SIGUSR1)
	sigs := make(chan os.Signal, 1)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	r, out, _ := newRunner(t, fixed(secret), func(o *Options) { o.Signals = sigs })
	go func() {
		waitFile(t, ready)
		sigs <- syscall.SIGUSR1
	}()
	code, err := r.Run(context.Background(), []string{"sh", "-c", `trap 'echo got-usr1; exit 5' USR1; touch "$1"; ` + childLoop, "sh", ready})
	if err != nil || code != 5 || strings.TrimSpace(out.String()) != "got-usr1" {
		t.Fatalf("got %d, %v, output %q; want exit 5 after got-usr1", code, err, out.String())
	}
}

func TestRunIgnoresContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, _, _ := newRunner(t, fixed(secret))
	time.AfterFunc(20*time.Millisecond, cancel)
	code, err := r.Run(ctx, []string{"sh", "-c", "sleep 0.2; exit 3"})
	if err != nil || code != 3 {
		t.Errorf("got %d, %v; want the child's 3", code, err)
	}
}

// rotating returns tokens[0] until advanced, then tokens[1], ...
type rotating struct {
	mu     sync.Mutex
	tokens []string
	i      int
	calls  int
}

func (r *rotating) Credential(context.Context) (provider.Pair, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return provider.Pair{AuthToken: r.tokens[r.i], RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)}, nil
}

func (r *rotating) advance() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.i++
}

// catchSignals makes the test process catch sigs for the rest of the test,
// so that the children it starts get their default dispositions whatever
// this process inherited: a signal ignored on entry (nohup ignores SIGHUP)
// stays ignored across exec, and a shell cannot trap it.
func catchSignals(t *testing.T, sigs ...os.Signal) {
	t.Helper()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	t.Cleanup(func() { signal.Stop(ch) })
}

// childLoop is a shell loop for a child that waits to be signalled; it
// gives up by itself after about 20 seconds with status 99, so a test that
// waits for it has its own deadline.
const childLoop = `n=0; while [ $n -lt 1000 ]; do sleep 0.02; n=$((n+1)); done; exit 99`

func TestRotateSignal(t *testing.T) {
	catchSignals(t, syscall.SIGHUP)
	src := &rotating{tokens: []string{"first", "second"}}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	r, out, _ := newRunner(t, src, func(o *Options) {
		o.OnRotate = Rotate{Mode: RotateSignal, Signal: syscall.SIGHUP}
		o.CheckEvery = 20 * time.Millisecond
	})
	go func() {
		waitFile(t, ready)
		src.advance()
	}()
	code, err := r.Run(context.Background(), []string{"sh", "-c", `trap 'echo hup; exit 4' HUP; echo "$MOMENTO_API_KEY"; touch "$1"; ` + childLoop, "sh", ready})
	if err != nil || code != 4 || out.String() != "first\nhup\n" {
		t.Fatalf("got %d, %v, output %q (99: the child never got SIGHUP)", code, err, out.String())
	}
}

// TestRotateSignalUnderNohup runs TestRotateSignal in a test process that
// starts with SIGHUP ignored, as under nohup, where it used to hang.
func TestRotateSignalUnderNohup(t *testing.T) {
	if os.Getenv("ENVEXEC_UNDER_NOHUP") != "" {
		return // the inner run only runs TestRotateSignal
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `trap '' HUP; exec "$0" -test.run '^TestRotateSignal$' -test.count=1`, os.Args[0])
	cmd.Env = append(os.Environ(), "ENVEXEC_UNDER_NOHUP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("TestRotateSignal with SIGHUP ignored on entry: %v\n%s", err, out)
	}
}

func TestRotateRestart(t *testing.T) {
	catchSignals(t, syscall.SIGTERM)
	src := &rotating{tokens: []string{"first", "second"}}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	r, out, _ := newRunner(t, src, func(o *Options) {
		o.OnRotate = Rotate{Mode: RotateRestart}
		o.CheckEvery = 20 * time.Millisecond
	})
	go func() {
		waitFile(t, ready)
		src.advance()
	}()
	// The first run waits for SIGTERM; the second sees the new token and
	// exits 0 on its own.
	script := `echo "start $MOMENTO_API_KEY"; [ "$MOMENTO_API_KEY" = second ] && exit 0; trap 'echo term; exit 9' TERM; touch "$1"; ` + childLoop
	code, err := r.Run(context.Background(), []string{"sh", "-c", script, "sh", ready})
	if err != nil || code != 0 || out.String() != "start first\nterm\nstart second\n" {
		t.Fatalf("got %d, %v, output %q", code, err, out.String())
	}
}

func TestRestartKillsStubbornChild(t *testing.T) {
	src := &rotating{tokens: []string{"first", "second"}}
	ready := filepath.Join(t.TempDir(), "ready")
	r, out, _ := newRunner(t, src, func(o *Options) {
		o.OnRotate = Rotate{Mode: RotateRestart}
		o.CheckEvery = 20 * time.Millisecond
		o.StopTimeout = 100 * time.Millisecond
	})
	go func() {
		waitFile(t, ready)
		src.advance()
	}()
	script := `echo "start $MOMENTO_API_KEY"; [ "$MOMENTO_API_KEY" = second ] && exit 0; trap '' TERM; touch "$1"; ` + childLoop
	code, err := r.Run(context.Background(), []string{"sh", "-c", script, "sh", ready})
	if err != nil || code != 0 || out.String() != "start first\nstart second\n" {
		t.Fatalf("got %d, %v, output %q", code, err, out.String())
	}
}

func TestParseRotate(t *testing.T) {
	for in, want := range map[string]Rotate{
		"": {}, "none": {}, "restart": {Mode: RotateRestart},
		"signal:SIGHUP": {RotateSignal, syscall.SIGHUP}, "signal:usr1": {RotateSignal, syscall.SIGUSR1}, "signal:12": {RotateSignal, 12},
	} {
		got, err := ParseRotate(in)
		if err != nil || got != want {
			t.Errorf("ParseRotate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseRotate(got.String()); back != got {
			t.Errorf("%v does not round-trip through %q", got, got.String())
		}
	}
	for _, bad := range []string{"signal:", "signal:SIGFOO", "reload", "signal:0"} {
		if _, err := ParseRotate(bad); err == nil {
			t.Errorf("ParseRotate(%q) accepted", bad)
		}
	}
}

func waitFile(t *testing.T, path string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("%s never appeared", path)
}
