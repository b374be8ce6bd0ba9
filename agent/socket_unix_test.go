//go:build unix

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDefaultSocketPathOrder: $XDG_RUNTIME_DIR if absolute, then
// /run/user/$UID if it is ours, then a private directory under the state
// directory, then /tmp.
func TestDefaultSocketPathOrder(t *testing.T) {
	home := t.TempDir()
	runUser := t.TempDir()
	uid := strconv.Itoa(os.Getuid())
	t.Setenv("HOME", home)
	t.Setenv("XDG_STATE_HOME", "")

	t.Setenv("XDG_RUNTIME_DIR", "/run/me")
	if got := defaultSocketPath(runUser); got != "/run/me/credhelper/agent.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "relative")
	state := filepath.Join(home, ".local", "state", "credhelper", "agent", "agent.sock")
	if got := defaultSocketPath(runUser); got != state {
		t.Errorf("with a relative XDG_RUNTIME_DIR and no /run/user/%s: %s, want %s", uid, got, state)
	}
	mine := filepath.Join(runUser, uid)
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := defaultSocketPath(runUser); got != filepath.Join(mine, "credhelper", "agent.sock") {
		t.Errorf("with /run/user/%s: %s", uid, got)
	}
	if err := os.Chmod(mine, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := defaultSocketPath(runUser); got != state {
		t.Errorf("with a /run/user/%s others can write: %s, want %s", uid, got, state)
	}
	t.Setenv("XDG_STATE_HOME", "/"+strings.Repeat("s", 100))
	if got := defaultSocketPath(runUser); got != "/tmp/credhelper-"+uid+"/agent.sock" {
		t.Errorf("with a state directory too long for a socket: %s", got)
	}
}

// TestSquattedSocketDirectory: a /tmp/credhelper-$UID made first by
// another user is refused by Listen and explained by SocketProblem.
func TestSquattedSocketDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a directory as another user and must run as root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "credhelper-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.sock")
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("Listen in a squatted directory = %v", err)
	}
	err = SocketProblem(path)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") || !strings.Contains(err.Error(), "no agent can serve you") {
		t.Errorf("SocketProblem = %v", err)
	}
	if SocketProblem(filepath.Join(t.TempDir(), "x", "agent.sock")) != nil {
		t.Error("SocketProblem for a missing directory")
	}
	_, err = (&Client{Path: path}).Ping(t.Context())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping through a squatted directory = %v, want ErrUnavailable", err)
	}
}
