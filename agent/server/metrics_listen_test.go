//go:build unix

package server_test

import (
	"context"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/agent/server"
)

// TestMetricsOnUnixSocket: unix:PATH serves /metrics on a 0600 socket,
// replaces a stale socket, refuses anything else at PATH or a directory
// others can write, and removes the socket on Close.
func TestMetricsOnUnixSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "metrics.sock")
	serve := func() (net.Listener, func()) {
		t.Helper()
		l, err := server.ListenMetrics("unix:" + path)
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: server.NewMetrics()}
		go hs.Serve(l)
		return l, func() { hs.Close(); l.Close() }
	}
	l, stop := serve()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("metrics socket: %v %v, want a socket with mode 0600", fi, err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("its directory has mode %04o, want 0700", di.Mode().Perm())
	}
	if got := l.Addr().String(); got != path {
		t.Errorf("Addr = %s", got)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := c.Get("http://metrics/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "credhelper_agent_refused_peers_total") {
		t.Errorf("metrics body:\n%s", body)
	}
	if _, err := server.ListenMetrics("unix:" + path); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("a second listener on a live socket: %v", err)
	}
	stop()
	if _, err := os.Lstat(path); err == nil {
		t.Error("the socket outlived Close")
	}
	// A stale socket (its listener gone without removing it) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	_, stop = serve()
	stop()
	// Anything else at the path is refused and left alone.
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := server.ListenMetrics("unix:" + path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if _, err := server.ListenMetrics("unix:" + filepath.Join(open, "m.sock")); err == nil || !strings.Contains(err.Error(), "chmod go-w "+open) {
		t.Errorf("in a directory others can write: %v", err)
	}
	for _, addr := range []string{"0.0.0.0:0", "example.com:9464", "unix:"} {
		if _, err := server.ListenMetrics(addr); err == nil {
			t.Errorf("ListenMetrics(%q) succeeded", addr)
		}
	}
}
