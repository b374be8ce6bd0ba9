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
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
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

// DefaultSocketPath returns where the agent's socket lives when nothing
// names it, the first of:
//
//   - $XDG_RUNTIME_DIR/credhelper/agent.sock, when $XDG_RUNTIME_DIR is an
//     absolute path (a relative one is ignored, as the XDG spec says);
//   - /run/user/$UID/credhelper/agent.sock, when /run/user/$UID exists and
//     belongs to this user and nobody else can write it (systemd-logind
//     makes it without setting the variable for every session);
//   - $XDG_STATE_HOME/credhelper/agent/agent.sock (~/.local/state/...), a
//     private directory no other user can create first, when that path is
//     short enough for a unix socket;
//   - /tmp/credhelper-$UID/agent.sock, last: another user can create that
//     directory first, and then Listen refuses it and SocketProblem says
//     so.
func DefaultSocketPath() string { return defaultSocketPath("/run/user") }

// defaultSocketPath is DefaultSocketPath with systemd's per-user runtime
// directories under runUser.
func defaultSocketPath(runUser string) string {
	if d := fsutil.RuntimeDir(); d != "" {
		return filepath.Join(d, "credhelper", "agent.sock")
	}
	uid := strconv.Itoa(os.Getuid())
	if d := filepath.Join(runUser, uid); runDirIsOurs(d) {
		return filepath.Join(d, "credhelper", "agent.sock")
	}
	if d := fsutil.StateHome(); d != "" {
		if p := filepath.Join(d, "credhelper", "agent", "agent.sock"); len(p) < maxSocketPath {
			return p
		}
	}
	return filepath.Join("/tmp", "credhelper-"+uid, "agent.sock")
}

// runDirIsOurs reports whether d is a directory of this user's that nobody
// else can write.
func runDirIsOurs(d string) bool {
	fi, err := os.Lstat(d)
	return err == nil && fi.IsDir() && fsutil.CheckOwned(d, fi, "runtime directory") == nil
}

// maxSocketPath is the longest socket path plus one: sockaddr_un holds 108
// bytes including the terminating NUL.
const maxSocketPath = 108

// Listener is the agent's unix socket listener. It holds the lock that
// makes it the only agent on its path until Close, which removes the socket
// and then releases the lock.
type Listener struct {
	*net.UnixListener
	path string
	lock *fsutil.Lock
}

// Path returns the socket's path.
func (l *Listener) Path() string { return l.path }

// Close stops listening, removes the socket and releases the lock.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if l.lock != nil {
		_ = l.lock.Unlock()
		l.lock = nil
	}
	return err
}

// socketDirRule is what the socket's directory must be: this user's and
// closed to everyone else.
var socketDirRule = fsutil.Rule{What: "socket directory", Mine: true, Private: true}

// Listen prepares path's directory (created 0700 if missing; an existing
// one must be a real directory owned by this user and closed to everyone
// else, under directories that pass the local-state trust rule), takes the
// agent lock beside the socket, replaces a stale socket left by a dead
// agent and listens with mode 0600. It refuses while another agent holds
// the lock or answers on path. It is Reserve followed by Listen.
func Listen(path string) (*Listener, error) {
	r, err := Reserve(path)
	if err != nil {
		return nil, err
	}
	return r.Listen()
}

// Reservation is the agent lock on a socket path, taken before the socket
// exists: an agent reserves its path first, so that a second agent started
// by mistake stops before it opens a profile (and writes its sinks or runs
// their commands), and listens once its profiles are warm.
type Reservation struct {
	path string
	lock *fsutil.Lock
}

// Reserve checks path's directory as Listen does and takes the agent
// lock, without creating the socket. It refuses while another agent holds
// the lock. Listen or Release must follow.
func Reserve(path string) (*Reservation, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("agent: empty socket path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("agent: socket path: %w", err)
	}
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("agent: socket path %s is %d bytes, over the 107 a unix socket allows: choose a shorter --socket", path, len(path))
	}
	d, err := secureDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	lock, ok, err := d.TryLock(filepath.Base(path) + ".lock")
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("agent: another agent is running on %s%s: stop it first, or start this one with another --socket", path, pidNote(path))
	}
	return &Reservation{path: path, lock: lock}, nil
}

// Release gives the path up without listening; a no-op after Listen.
func (r *Reservation) Release() {
	if r.lock != nil {
		_ = r.lock.Unlock()
		r.lock = nil
	}
}

// Listen replaces a stale socket left by a dead agent and listens on the
// reserved path with mode 0600. The Listener then holds the lock; on
// error the reservation is released.
func (r *Reservation) Listen() (*Listener, error) {
	if r.lock == nil {
		return nil, fmt.Errorf("agent: the reservation of %s was released", r.path)
	}
	lock, path := r.lock, r.path
	r.lock = nil
	fail := func(err error) (*Listener, error) {
		lock.Unlock()
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return fail(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("agent: listen on %s: %w", path, err))
	}
	ln.SetUnlinkOnClose(true)
	// The directory is already 0700; the mode is a second fence.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fail(fmt.Errorf("agent: chmod socket: %w", err))
	}
	return &Listener{UnixListener: ln, path: path, lock: lock}, nil
}

// secureDir makes sure dir exists, is a directory (not a symbolic link),
// is owned by this user, is not accessible to anyone else, and sits under
// directories nobody else can write; it returns it open.
func secureDir(dir string) (*fsutil.Dir, error) {
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("agent: socket directory %s is not a directory (a symlink?): remove it or choose another --socket", dir)
	}
	d, err := fsutil.MkdirAll(dir, socketDirRule)
	if err != nil {
		return nil, fmt.Errorf("agent: %w; or choose another --socket", err)
	}
	return d, nil
}

// SocketProblem explains why path's directory cannot hold this user's
// agent socket (another user created it first, or it is open to others),
// or returns nil. Callers that fall back to resolving credentials without
// the agent use it to warn about a squatted default directory.
func SocketProblem(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil // missing: the agent is simply not running
	}
	if !fi.IsDir() {
		return fmt.Errorf("agent: socket directory %s is not a directory: remove it, or set --socket", dir)
	}
	if err := fsutil.CheckOwned(dir, fi, "socket directory"); err != nil {
		return fmt.Errorf("agent: %w; until then no agent can serve you at %s", err, path)
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
