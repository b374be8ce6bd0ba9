package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/credhelper/credhelper/internal/testexec"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
)

// childEnv makes the test binary act as a small client instead of running
// tests; the tests start it under another uid (see runAsNobody).
const (
	childEnv       = "CREDHELPER_AGENT_TEST_CHILD"
	childSocketEnv = "CREDHELPER_AGENT_TEST_SOCKET"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Getenv(childSocketEnv)))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// credhelperBin builds the credhelper binary once per test run, on first
// use, so unit-test-only runs do not pay for it.
func credhelperBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "credhelper-agent-test")
		if binErr != nil {
			return
		}
		// 0755 so that a child running as another uid can execute what is
		// copied here.
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "credhelper")
		binErr = testexec.BuildCredhelper(binDir, nil)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// child is the test binary's client mode. It prints one word describing
// what happened and exits 0; the parent asserts on the word.
func child(mode, path string) int {
	switch mode {
	case "raw":
		// Connect and ping without any client-side check, to exercise the
		// server's SO_PEERCRED check.
		c, err := net.Dial("unix", path)
		if err != nil {
			if errors.Is(err, syscall.EACCES) {
				fmt.Println("dial-eacces")
			} else {
				fmt.Println("dial-error", err)
			}
			return 0
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, `{"v":1,"op":"ping"}`+"\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case err == nil:
			fmt.Println("answered", strings.TrimSpace(line))
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			fmt.Println("closed")
		default:
			fmt.Println("read-error", err)
		}
	case "client":
		// The real client, which checks the agent's uid before sending.
		_, err := (&agent.Client{Path: path}).Ping(context.Background())
		switch {
		case err == nil:
			fmt.Println("answered")
		case errors.Is(err, agent.ErrUnavailable) && strings.Contains(err.Error(), "is served by uid"):
			fmt.Println("foreign-agent")
		default:
			fmt.Println("error", err)
		}
	default:
		fmt.Println("unknown mode", mode)
		return 2
	}
	return 0
}

// runAsNobody runs the test binary's child mode as uid/gid 65534.
func runAsNobody(t *testing.T, mode, socket string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test starts a process as another user and must run as root (the test container does)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	credhelperBin(t) // makes binDir, a 0755 directory
	exe := filepath.Join(binDir, "agent.test")
	if _, err := os.Stat(exe); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{childEnv + "=" + mode, childSocketEnv + "=" + socket, "PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as uid 65534: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// agentProc is a `credhelper agent` subprocess and its parsed JSON log.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int

	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	grew  chan struct{}
}

// startAgent starts `credhelper agent --log-format json args...` with env
// and waits until it serves.
func startAgent(t testing.TB, env []string, args ...string) *agentProc {
	t.Helper()
	ap := &agentProc{done: make(chan struct{}), grew: make(chan struct{}, 1)}
	ap.cmd = exec.Command(credhelperBin(t), append([]string{"agent", "--log-format", "json"}, args...)...)
	ap.cmd.Env = env
	stderr, err := ap.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			ap.mu.Lock()
			ap.raw.Write(sc.Bytes())
			ap.raw.WriteByte('\n')
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				ap.lines = append(ap.lines, m)
			}
			ap.mu.Unlock()
			select {
			case ap.grew <- struct{}{}:
			default:
			}
		}
		err := ap.cmd.Wait()
		ap.code = ap.cmd.ProcessState.ExitCode()
		if err != nil && ap.code == 0 {
			ap.code = -1
		}
		close(ap.done)
	}()
	t.Cleanup(func() {
		select {
		case <-ap.done:
		default:
			_ = ap.cmd.Process.Kill()
			<-ap.done
		}
	})
	ap.waitLog(t, "agent: serving", 20*time.Second)
	return ap
}

// waitLog waits for a log line whose msg starts with prefix and returns it.
func (ap *agentProc) waitLog(t testing.TB, prefix string, timeout time.Duration) map[string]any {
	t.Helper()
	return ap.waitLogWhere(t, prefix, nil, timeout)
}

// waitLogWhere waits for a log line whose msg starts with prefix and that
// match (when set) accepts, and returns it.
func (ap *agentProc) waitLogWhere(t testing.TB, prefix string, match func(map[string]any) bool, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		ap.mu.Lock()
		for ; i < len(ap.lines); i++ {
			if msg, _ := ap.lines[i]["msg"].(string); strings.HasPrefix(msg, prefix) && (match == nil || match(ap.lines[i])) {
				line := ap.lines[i]
				ap.mu.Unlock()
				return line
			}
		}
		ap.mu.Unlock()
		select {
		case <-ap.grew:
		case <-ap.done:
			// Drain what the scanner read before exit.
			ap.mu.Lock()
			n := len(ap.lines)
			ap.mu.Unlock()
			if i == n {
				t.Fatalf("agent exited (code %d) before logging %q:\n%s", ap.code, prefix, ap.log())
			}
		case <-deadline:
			t.Fatalf("agent did not log %q within %v:\n%s", prefix, timeout, ap.log())
		}
	}
}

func (ap *agentProc) log() string {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return ap.raw.String()
}

// stop sends sig and waits for the exit code.
func (ap *agentProc) stop(t testing.TB, sig os.Signal) int {
	t.Helper()
	if err := ap.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ap.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("agent still running 20s after %v:\n%s", sig, ap.log())
	}
	return ap.code
}

// runCLI runs the credhelper binary and returns stdout, stderr and the
// exit code.
func runCLI(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(credhelperBin(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("credhelper %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// baseEnv is the environment without anything credhelper reads.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CREDHELPER_") || strings.HasPrefix(kv, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
