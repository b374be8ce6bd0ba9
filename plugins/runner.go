package plugins

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-plugin/runner"
)

// Sentinel errors of the host side.
var (
	// ErrChecksumMismatch reports a plugin binary whose SHA-256 is not the
	// configured one.
	ErrChecksumMismatch = errors.New("plugin checksum mismatch")
	// ErrUnsafeBinary reports a plugin binary others could have replaced:
	// not a regular file, writable by group or others, owned by someone
	// else, or in a directory others can write.
	ErrUnsafeBinary = errors.New("unsafe plugin binary")
)

// envWatchStdin tells the served side that its stdin is a pipe from the
// host that closes when the host dies.
const envWatchStdin = "CREDHELPER_PLUGIN_WATCH_STDIN"

// verifyBinary checks that the binary at path is safe to run and, if want
// is not nil, that its SHA-256 is want. It hashes the file it checked the
// mode of, through one open descriptor.
func verifyBinary(name, path string, want []byte, log *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("plugins: plugin %q: cannot open its binary: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("plugins: plugin %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("plugins: plugin %q: %s is not a regular file (%s): %w", name, path, fi.Mode().Type(), ErrUnsafeBinary)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("plugins: plugin %q: %s is writable by group or others (mode %04o): run chmod go-w on it: %w", name, path, perm, ErrUnsafeBinary)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("plugins: plugin %q: %s is owned by uid %d, neither you nor root: %w", name, path, st.Uid, ErrUnsafeBinary)
	}
	dir := filepath.Dir(path)
	if di, err := os.Stat(dir); err != nil {
		return fmt.Errorf("plugins: plugin %q: %w", name, err)
	} else if di.Mode().Perm()&0o022 != 0 && di.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("plugins: plugin %q: its directory %s is writable by group or others (mode %04o), so the binary could be replaced: run chmod go-w on it: %w", name, dir, di.Mode().Perm(), ErrUnsafeBinary)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("plugins: plugin %q: reading its binary: %w", name, err)
	}
	got := h.Sum(nil)
	if want == nil {
		log.Warn("plugins: running an unpinned plugin binary; pin it with its sha256", "plugin", name, "path", path, "sha256", fmt.Sprintf("%x", got))
		return nil
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("plugins: plugin %q: %s has sha256 %x, but the config expects %x: refusing to run it; if you installed a new version on purpose, update its checksum: %w", name, path, got, want, ErrChecksumMismatch)
	}
	return nil
}

// procRunner runs the plugin binary for go-plugin (a runner.Runner). Unlike
// go-plugin's own runner it verifies the binary right before starting it,
// gives the plugin a stdin pipe that closes when the host dies, asks the
// kernel to kill the plugin when the host dies (Linux), and withholds
// anything the plugin prints to stdout before its handshake.
type procRunner struct {
	p      *Plugin
	cmd    *exec.Cmd
	stdinW *os.File
	stdout *handshakeReader
	stderr io.ReadCloser
	pid    atomic.Int64

	verifyErr error // set by Start when the binary fails verification
}

var _ runner.Runner = (*procRunner)(nil)

// newRunner prepares the command; pluginEnv is go-plugin's environment for
// the plugin (magic cookie, mTLS certificate, socket directory).
func (p *Plugin) newRunner(pluginEnv []string) (*procRunner, error) {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = p.environ(pluginEnv)
	if !p.opts.noDeathSignal {
		cmd.SysProcAttr = sysProcAttr()
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = stdinR
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, err
	}
	return &procRunner{p: p, cmd: cmd, stdinW: stdinW, stdout: newHandshakeReader(stdout), stderr: stderr}, nil
}

// environ builds the plugin's environment: PATH, HOME and TMPDIR from the
// host, Spec.Env, then go-plugin's variables, which win.
func (p *Plugin) environ(pluginEnv []string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, e := range p.spec.Env {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			env = append(env, e+"="+v)
		}
	}
	env = append(env, envWatchStdin+"=1")
	return append(env, pluginEnv...)
}

// Start verifies the binary and starts it.
func (r *procRunner) Start(context.Context) error {
	defer r.cmd.Stdin.(*os.File).Close() // the child has its copy
	if err := verifyBinary(r.p.name, r.p.spec.Path, r.p.digest, r.p.log); err != nil {
		r.verifyErr = err
		r.stdinW.Close()
		return err
	}
	if err := r.cmd.Start(); err != nil {
		r.stdinW.Close()
		return err
	}
	r.pid.Store(int64(r.cmd.Process.Pid))
	return nil
}

// Wait waits for the process to exit and closes the host's end of its
// stdin.
func (r *procRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.stdinW.Close()
	return err
}

// Kill kills the process; killing an exited one is not an error.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *procRunner) Name() string          { return r.p.name }
func (r *procRunner) ID() string            { return strconv.FormatInt(r.pid.Load(), 10) }

// Diagnose adds nothing to go-plugin's start errors: they must not carry
// the plugin's output.
func (r *procRunner) Diagnose(context.Context) string { return "" }

func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// handshakeLine matches go-plugin's handshake:
// CORE-VERSION|APP-VERSION|NETWORK|ADDRESS|PROTOCOL[|SERVER-CERT[|MUX]].
var handshakeLine = regexp.MustCompile(`^\d+\|\d+\|(unix|tcp)\|[^|\s]+\|(grpc|netrpc)(\|[^|\s]*){0,2}\r?\n?$`)

// withheld replaces a first stdout line that is not a handshake, so that
// what the plugin printed (which may be anything) appears in no error.
const withheld = "(output withheld: not a go-plugin handshake)\n"

// handshakeReader passes a plugin's stdout to go-plugin, replacing the
// first line if it is not a handshake.
type handshakeReader struct {
	rc       io.ReadCloser
	br       *bufio.Reader
	first    []byte // the checked first line, not yet read
	checked  bool
	polluted atomic.Bool
}

func newHandshakeReader(rc io.ReadCloser) *handshakeReader {
	return &handshakeReader{rc: rc, br: bufio.NewReader(rc)}
}

func (h *handshakeReader) Read(b []byte) (int, error) {
	if !h.checked {
		h.checked = true
		line, err := h.br.ReadString('\n')
		if line == "" && err != nil {
			return 0, err
		}
		if handshakeLine.MatchString(line) {
			h.first = []byte(line)
		} else {
			h.polluted.Store(true)
			h.first = []byte(withheld)
		}
	}
	if len(h.first) > 0 {
		n := copy(b, h.first)
		h.first = h.first[n:]
		return n, nil
	}
	if h.polluted.Load() {
		// Drain without passing on: go-plugin logs nothing of it, but
		// nothing after a bad first line matters.
		_, err := io.Copy(io.Discard, h.br)
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	return h.br.Read(b)
}

func (h *handshakeReader) Close() error { return h.rc.Close() }
