package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/provider"
)

// ListenMetrics listens where the agent's --metrics-addr says:
//
//   - "unix:PATH": a unix socket with mode 0600, so that only this user
//     (and root) can read the metrics. Its directory is created 0700 if
//     missing and must pass the local-state trust rule; the socket is
//     bound under a temporary name, closed to others, then renamed into
//     place, so nobody can connect while it is open. A stale socket at
//     PATH is replaced; anything else there is refused.
//   - a loopback host:port such as 127.0.0.1:9464: every local user can
//     connect to it and read profile names and refresh timing (never a
//     token). Any other address is refused: metrics are not served to the
//     network.
func ListenMetrics(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenPrivateUnix(path)
	}
	if !provider.LoopbackAddr(addr) {
		return nil, fmt.Errorf("agent: metrics address %q must be unix:PATH or a loopback host:port such as 127.0.0.1:9464: metrics are not served to the network", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent: metrics: listen on %s: %w", addr, err)
	}
	return l, nil
}

func listenPrivateUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("agent: metrics address unix: needs a path, such as unix:/run/user/1000/credhelper/metrics.sock")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("agent: metrics socket: %w", err)
	}
	if len(path) >= 108 {
		return nil, fmt.Errorf("agent: metrics socket %s is %d bytes, over the 107 a unix socket allows: choose a shorter path", path, len(path))
	}
	dir, err := fsutil.MkdirAll(filepath.Dir(path), fsutil.Rule{What: "metrics socket directory"})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer dir.Close()
	name := filepath.Base(path)
	if fi, err := dir.Lstat(name); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("agent: metrics socket %s exists and is not a socket: remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("agent: something is already listening on %s: stop it first, or choose another metrics path", path)
		}
		if err := dir.Remove(name); err != nil {
			return nil, fmt.Errorf("agent: remove stale metrics socket %s: %w", path, err)
		}
	}
	tmp := "." + name + ".tmp-" + fmt.Sprint(os.Getpid())
	_ = dir.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir.Join(tmp), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent: metrics: listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	err = os.Chmod(dir.Join(tmp), 0o600)
	if err == nil {
		err = dir.Rename(tmp, name)
	}
	if err != nil {
		ln.Close()
		_ = dir.Remove(tmp)
		return nil, fmt.Errorf("agent: metrics socket %s: %w", path, err)
	}
	return &unlinkListener{UnixListener: ln, path: path}, nil
}

// unlinkListener removes its socket's final path when closed.
type unlinkListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

// Close stops listening and removes the socket.
func (l *unlinkListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { _ = os.Remove(l.path) })
	return err
}

// Addr reports the socket's final path.
func (l *unlinkListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }
