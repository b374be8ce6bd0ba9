package server_test

import (
	"cmp"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/agent"
)

func TestSocketPath(t *testing.T) {
	t.Setenv(agent.SocketEnv, "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := agent.SocketPath(), "/run/user/1000/credhelper/agent.sock"; got != want {
		t.Errorf("SocketPath() = %q, want %q", got, want)
	}
	// Without a runtime directory (a relative one is ignored), and unless
	// systemd made /run/user/$UID, the socket goes in a private directory
	// under the state directory, and in /tmp only without one.
	uid := strconv.Itoa(os.Getuid())
	home := t.TempDir()
	systemd := ""
	if fi, err := os.Stat(filepath.Join("/run/user", uid)); err == nil && fi.IsDir() {
		systemd = filepath.Join("/run/user", uid, "credhelper", "agent.sock")
	}
	t.Setenv("XDG_STATE_HOME", "")
	for _, v := range []string{"", "relative/dir"} {
		t.Setenv("XDG_RUNTIME_DIR", v)
		t.Setenv("HOME", home)
		want := cmp.Or(systemd, filepath.Join(home, ".local", "state", "credhelper", "agent", "agent.sock"))
		if got := agent.SocketPath(); got != want {
			t.Errorf("XDG_RUNTIME_DIR=%q: SocketPath() = %q, want %q", v, got, want)
		}
		t.Setenv("HOME", "")
		want = cmp.Or(systemd, filepath.Join("/tmp", "credhelper-"+uid, "agent.sock"))
		if got := agent.SocketPath(); got != want {
			t.Errorf("XDG_RUNTIME_DIR=%q, no home: SocketPath() = %q, want %q", v, got, want)
		}
	}
	t.Setenv(agent.SocketEnv, "/x/y.sock")
	if got := agent.SocketPath(); got != "/x/y.sock" {
		t.Errorf("with $%s: SocketPath() = %q", agent.SocketEnv, got)
	}
}

func TestListen(t *testing.T) {
	t.Run("modes", func(t *testing.T) {
		dir := filepath.Join(socketDir(t), "created")
		path := filepath.Join(dir, "agent.sock")
		l, err := agent.Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for p, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, path: os.ModeSocket | 0o600} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
			}
		}
	})
	t.Run("live agent refused, socket removed on close", func(t *testing.T) {
		path := filepath.Join(socketDir(t), "agent.sock")
		l, err := agent.Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = agent.Listen(path)
		if err == nil || !strings.Contains(err.Error(), "another agent is running on "+path) {
			t.Errorf("second Listen = %v, want a refusal naming the socket", err)
		}
		if c, err := net.Dial("unix", path); err != nil {
			t.Errorf("the refused Listen broke the live socket: %v", err)
		} else {
			c.Close()
		}
		l.Close()
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("socket left after Close: %v", err)
		}
		l2, err := agent.Listen(path)
		if err != nil {
			t.Fatalf("Listen after the first agent closed: %v", err)
		}
		l2.Close()
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(socketDir(t), "agent.sock")
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ul.SetUnlinkOnClose(false)
		ul.Close() // a dead agent's socket: present, nobody listening
		l, err := agent.Listen(path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		defer l.Close()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial the new socket: %v", err)
		}
		c.Close()
	})
	t.Run("unlocked live listener refused", func(t *testing.T) {
		path := filepath.Join(socketDir(t), "agent.sock")
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer ul.Close()
		if _, err := agent.Listen(path); err == nil || !strings.Contains(err.Error(), "already listening") {
			t.Errorf("Listen over a live socket = %v, want a refusal", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(socketDir(t), "agent.sock")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := agent.Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen = %v, want a refusal", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "x" {
			t.Error("Listen clobbered a regular file")
		}
	})
	t.Run("open directory refused", func(t *testing.T) {
		dir := socketDir(t)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := agent.Listen(filepath.Join(dir, "agent.sock")); err == nil || !strings.Contains(err.Error(), "open to other users") {
			t.Errorf("Listen = %v, want a refusal", err)
		}
	})
	t.Run("symlinked directory refused", func(t *testing.T) {
		base := socketDir(t)
		real := filepath.Join(base, "real")
		if err := os.Mkdir(real, 0o700); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(base, "link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if _, err := agent.Listen(filepath.Join(link, "agent.sock")); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("Listen = %v, want a refusal", err)
		}
	})
	t.Run("directory of another user refused", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("this test chowns a directory to another user and must run as root (the test container does)")
		}
		dir := socketDir(t)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := agent.Listen(filepath.Join(dir, "agent.sock")); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("Listen = %v, want a refusal", err)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		path := filepath.Join(socketDir(t), strings.Repeat("x", 110)+".sock")
		if _, err := agent.Listen(path); err == nil || !strings.Contains(err.Error(), "over the 107") {
			t.Errorf("Listen = %v, want a refusal", err)
		}
	})
}
