package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SocketEnv names the environment variable that overrides the socket path
// for both the agent and its clients.
const SocketEnv = "CREDHELPER_AGENT_SOCKET"

// SocketPath returns $CREDHELPER_AGENT_SOCKET if set, else
// DefaultSocketPath().
func SocketPath() string {
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	return DefaultSocketPath()
}

// DefaultSocketPath returns $XDG_RUNTIME_DIR/credhelper/agent.sock, or
// /tmp/credhelper-$UID/agent.sock when $XDG_RUNTIME_DIR is not set to an
// absolute path.
func DefaultSocketPath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "credhelper", "agent.sock")
	}
	return filepath.Join("/tmp", "credhelper-"+strconv.Itoa(os.Getuid()), "agent.sock")
}

// Listener is the agent's unix socket listener. It holds the lock that
// makes it the only agent on its path until Close, which removes the socket
// and then releases the lock.
type Listener struct {
	*net.UnixListener
	path string
	lock *os.File
}

// Path returns the socket's path.
func (l *Listener) Path() string { return l.path }

// Close stops listening, removes the socket and releases the lock.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if l.lock != nil {
		_ = l.lock.Close() // releases the flock
		l.lock = nil
	}
	return err
}

// Listen prepares path's directory (created 0700 if missing; an existing
// one must be a real directory owned by this user and closed to everyone
// else), takes the agent lock beside the socket, replaces a stale socket
// left by a dead agent and listens with mode 0600. It refuses while another
// agent holds the lock or answers on path.
func Listen(path string) (*Listener, error) {
	if path == "" {
		return nil, errors.New("agent: empty socket path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("agent: socket path: %w", err)
	}
	// sockaddr_un holds 108 bytes including the terminating NUL.
	if len(path) >= 108 {
		return nil, fmt.Errorf("agent: socket path %s is %d bytes, over the 107 a unix socket allows: choose a shorter --socket", path, len(path))
	}
	dir := filepath.Dir(path)
	if err := secureDir(dir); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: lock file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("agent: another agent is running on %s%s: stop it first, or start this one with another --socket", path, pidNote(path))
		}
		return nil, fmt.Errorf("agent: lock %s.lock: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	// The directory is already 0700; the mode is a second fence.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent: chmod socket: %w", err)
	}
	ok = true
	return &Listener{UnixListener: ln, path: path, lock: lock}, nil
}

// secureDir makes sure dir exists, is a directory (not a symlink), is owned
// by this user and is not accessible to anyone else.
func secureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("agent: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("agent: socket directory %s is not a directory (a symlink?): remove it or choose another --socket", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("agent: cannot read the owner of %s", dir)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("agent: socket directory %s belongs to uid %d, not to you (uid %d): remove it or choose another --socket", dir, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("agent: socket directory %s is open to other users (mode %04o): chmod 0700 %s or choose another --socket", dir, perm, dir)
	}
	return nil
}

// removeStale removes a socket at path that nobody answers on. It is called
// with the agent lock held, so no live agent can be listening there unless
// it was started without the lock; a socket that answers is refused.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("agent: %s exists and is not a socket: remove it or choose another --socket", path)
	}
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("agent: something is already listening on %s: stop it first, or choose another --socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent: remove stale socket: %w", err)
	}
	return nil
}

// pidNote names the running agent's pid for the refusal message, if it
// answers a ping.
func pidNote(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r, err := (&Client{Path: path}).Ping(ctx)
	if err != nil || r.PID == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", r.PID)
}

// PeerCred returns the credentials of the process at the other end of c.
func PeerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		cred *unix.Ucred
		gerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("agent: SO_PEERCRED: %w", gerr)
	}
	return cred, nil
}
