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
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-plugin/runner"

	"github.com/credhelper/credhelper/internal/fsutil"
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

// binaryRule is what a plugin binary must be beyond the path rule that
// every directory above it passes: a regular file of the user's or root's
// that nobody else can write.
var binaryRule = fsutil.Rule{What: "plugin binary", MaxSize: 1 << 30}

// openBinary opens the plugin binary at path through the local-state trust
// rule (the binary and every directory above it belong to the user or root
// and nobody else can write them; links are resolved once), hashes the
// open descriptor and, if want is not nil, checks that the hash is want.
// The returned file is the one to execute: what runs is exactly what was
// hashed.
func openBinary(name, path string, want []byte, log *slog.Logger) (*os.File, error) {
	d, base, err := fsutil.OpenParent(path, binaryRule)
	if err != nil {
		return nil, binaryError(name, err)
	}
	defer d.Close()
	f, _, err := d.Open(base, binaryRule)
	if err != nil {
		return nil, binaryError(name, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("plugins: plugin %q: reading its binary: %w", name, err)
	}
	got := h.Sum(nil)
	if want == nil {
		log.Warn("plugins: running an unpinned plugin binary; pin it with its sha256", "plugin", name, "path", path, "sha256", fmt.Sprintf("%x", got))
		return f, nil
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		f.Close()
		return nil, fmt.Errorf("plugins: plugin %q: %s has sha256 %x, but the config expects %x: refusing to run it; if you installed a new version on purpose, update its checksum: %w", name, path, got, want, ErrChecksumMismatch)
	}
	return f, nil
}

func binaryError(name string, err error) error {
	if errors.Is(err, fsutil.ErrUntrusted) || errors.Is(err, fsutil.ErrNotRegular) || errors.Is(err, fsutil.ErrTooLarge) {
		return fmt.Errorf("plugins: plugin %q: %w: %w", name, err, ErrUnsafeBinary)
	}
	return fmt.Errorf("plugins: plugin %q: cannot open its binary: %w", name, err)
}

// verifyBinary checks the binary at path as openBinary does.
func verifyBinary(name, path string, want []byte, log *slog.Logger) error {
	f, err := openBinary(name, path, want, log)
	if err != nil {
		return err
	}
	return f.Close()
}

// procRunner runs the plugin binary for go-plugin (a runner.Runner). Unlike
// go-plugin's own runner it verifies the binary right before starting it
// and executes the descriptor it verified,
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

// Start verifies the binary and starts exactly the bytes it hashed: the
// child executes the open, checked descriptor, not the path again.
func (r *procRunner) Start(context.Context) error {
	defer r.cmd.Stdin.(*os.File).Close() // the child has its copy
	f, err := openBinary(r.p.name, r.p.spec.Path, r.p.digest, r.p.log)
	if err == nil {
		f, r.cmd.Path, err = execPath(f, r.p.spec.Path)
	}
	if err != nil {
		r.verifyErr = err
		r.stdinW.Close()
		return err
	}
	err = r.cmd.Start()
	f.Close() // the child has executed it, or failed to
	if err != nil {
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
