package plugins

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// MaxAnswer is the largest answer, in bytes, the host accepts from a
// plugin; a larger one fails the call with an error naming the plugin,
// before the answer is read into memory.
const MaxAnswer = 1 << 20

// capabilitiesTimeout bounds a capability question or a health check once
// the process runs.
const capabilitiesTimeout = 5 * time.Second

// ErrClosed reports a call on a Plugin after Close.
var ErrClosed = errors.New("plugin closed")

// Spec says which plugin binary to run and how.
type Spec struct {
	// Name names the plugin in errors and logs; default the file name of
	// Path.
	Name string
	// Path is the plugin binary. A relative path is made absolute against
	// the working directory at Open.
	Path string
	// Args are passed to the plugin after its name.
	Args []string
	// SHA256 is the hex SHA-256 of the binary. Required unless
	// Options.AllowUnpinned is set.
	SHA256 string
	// Env adds to the plugin's environment, which otherwise holds only
	// PATH, HOME and TMPDIR from the host: "NAME=value" sets a variable,
	// a bare "NAME" passes the host's value of NAME, if set.
	Env []string
}

// Options tunes a Plugin.
type Options struct {
	// Logger receives the plugin's stderr log lines, at their level, and
	// this package's own diagnostics. Default: silent.
	Logger *slog.Logger
	// StartTimeout bounds starting the process and its handshake; default
	// 15 seconds. A call's own deadline bounds how long it waits for a
	// start.
	StartTimeout time.Duration
	// AllowUnpinned runs a binary without Spec.SHA256, for development
	// only; its digest is logged at warning level on every start.
	AllowUnpinned bool

	// noDeathSignal leaves out the parent-death signal, so tests can show
	// that the served side's own watch suffices.
	noDeathSignal bool
}

// Plugin is one plugin binary the host runs on demand. Its process starts
// when its Backend or Issuer is opened (or on the first call after that),
// serves every later call, is restarted on the next call after it died,
// and is killed by Close.
//
// A Plugin is safe for concurrent use.
type Plugin struct {
	spec   Spec
	name   string
	digest []byte // nil when unpinned
	opts   Options
	log    *slog.Logger
	reaper sync.WaitGroup // processes being killed

	mu     sync.Mutex
	cur    *proc // guarded by mu; nil until started or after a crash
	closed bool  // guarded by mu
}

// proc is one run of the plugin process.
type proc struct {
	ready chan struct{} // closed once started or failed
	// Set before ready is closed, then read-only.
	client  *plugin.Client
	rpc     *plugin.GRPCClient
	pid     int
	err     error
	backend *backendClient
	issuer  *issuerClient

	lost atomic.Bool // the connection failed; restart on the next call

	// What this process declared, asked once each.
	backendAnswer answer[backendCaps]
	issuerAnswer  answer[issuerCaps]
}

// Open checks the plugin binary and returns a Plugin that runs it on
// demand; it starts no process. It fails if the spec is incomplete or the
// binary is unsafe or does not match its checksum.
func Open(spec Spec, optFns ...func(*Options)) (*Plugin, error) {
	opts := Options{StartTimeout: 15 * time.Second}
	for _, fn := range optFns {
		fn(&opts)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout <= 0 {
		return nil, fmt.Errorf("plugins: StartTimeout %v must be positive", opts.StartTimeout)
	}
	if spec.Path == "" {
		return nil, errors.New("plugins: Spec.Path is empty: name the plugin binary")
	}
	abs, err := filepath.Abs(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("plugins: plugin path %q: %w", spec.Path, err)
	}
	spec.Path = abs
	spec.Args = append([]string(nil), spec.Args...)
	spec.Env = append([]string(nil), spec.Env...)
	name := spec.Name
	if name == "" {
		name = filepath.Base(abs)
	}
	p := &Plugin{spec: spec, name: name, opts: opts, log: opts.Logger}
	switch {
	case spec.SHA256 != "":
		d, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(spec.SHA256), "sha256:"))
		if err != nil || len(d) != 32 {
			return nil, fmt.Errorf("plugins: plugin %q: checksum %q is not a hex SHA-256 (64 hex digits; sha256sum prints it)", name, spec.SHA256)
		}
		p.digest = d
	case !opts.AllowUnpinned:
		return nil, fmt.Errorf("plugins: plugin %q has no SHA-256 checksum: pin it with the output of `sha256sum %s`", name, abs)
	}
	if err := verifyBinary(name, abs, p.digest, p.log); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the plugin's name as used in errors and logs.
func (p *Plugin) Name() string { return p.name }

// PID returns the process id of the running plugin process, or 0 if none
// runs.
func (p *Plugin) PID() int {
	p.mu.Lock()
	pr := p.cur
	p.mu.Unlock()
	if pr == nil {
		return 0
	}
	select {
	case <-pr.ready:
		if pr.err == nil && !pr.client.Exited() {
			return pr.pid
		}
	default:
	}
	return 0
}

// Close kills the plugin process, if it runs, and waits for it to exit.
// Later calls fail with ErrClosed. Close is idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	p.closed = true
	pr := p.cur
	p.cur = nil
	p.mu.Unlock()
	if pr != nil {
		<-pr.ready
		if pr.client != nil {
			pr.client.Kill()
		}
	}
	p.reaper.Wait()
	return nil
}

// acquire returns the running process, starting one if there is none or
// the last one died. It waits for a start no longer than ctx allows.
func (p *Plugin) acquire(ctx context.Context) (*proc, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("plugins: plugin %q: %w", p.name, ErrClosed)
	}
	pr := p.cur
	if pr != nil && pr.finished() && (pr.err != nil || pr.lost.Load() || pr.client.Exited() || processExited(pr.pid)) {
		if pr.err == nil {
			p.log.Warn("plugins: plugin process exited; restarting it", "plugin", p.name, "pid", pr.pid)
		}
		p.discard(pr)
		pr = nil
	}
	if pr == nil {
		pr = &proc{ready: make(chan struct{})}
		p.cur = pr
		go p.start(pr)
	}
	p.mu.Unlock()
	select {
	case <-pr.ready:
	case <-ctx.Done():
		return nil, provider.Transient(fmt.Errorf("plugins: plugin %q did not start before the call's deadline: %w", p.name, ctx.Err()))
	}
	if pr.err != nil {
		return nil, pr.err
	}
	return pr, nil
}

// discard forgets pr and kills its process in the background; p.mu is
// held.
func (p *Plugin) discard(pr *proc) {
	if p.cur == pr {
		p.cur = nil
	}
	if pr.client == nil {
		return
	}
	p.reaper.Add(1)
	go func() {
		defer p.reaper.Done()
		pr.client.Kill()
	}()
}

func (pr *proc) finished() bool {
	select {
	case <-pr.ready:
		return true
	default:
		return false
	}
}

// start runs the plugin process and connects to it.
func (p *Plugin) start(pr *proc) {
	defer close(pr.ready)
	var rn *procRunner
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(nil, nil),
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			var err error
			rn, err = p.newRunner(cmd.Env)
			return rn, err
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		// go-plugin lets answers grow to 2 GiB; a record is a few KiB.
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxAnswer))},
		SkipHostEnv:     true,
		StartTimeout:    p.opts.StartTimeout,
		Logger:          newHCLogger(p.log, "plugin"),
		// Stderr lines are forwarded through Logger; stdout after the
		// handshake and the plugin's synced stdio are discarded.
		Stderr:     io.Discard,
		SyncStdout: io.Discard,
		SyncStderr: io.Discard,
	})
	fail := func(err error) {
		client.Kill()
		pr.err = err
	}
	rpc, err := client.Client()
	if err != nil {
		switch {
		case rn != nil && rn.verifyErr != nil:
			fail(rn.verifyErr)
		case rn != nil && rn.stdout.polluted.Load():
			fail(fmt.Errorf("plugins: plugin %q wrote to stdout before its handshake (output withheld): a plugin must not print to stdout; log to stderr", p.name))
		default:
			fail(fmt.Errorf("plugins: plugin %q failed to start: %s", p.name, cleanMessage(err.Error())))
		}
		return
	}
	grpcClient, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		fail(fmt.Errorf("plugins: plugin %q does not speak gRPC", p.name))
		return
	}
	pr.client, pr.rpc = client, grpcClient
	pr.pid, _ = strconv.Atoi(client.ID())
	if pr.backend, err = dispense[*backendClient](rpc, BackendName); err == nil {
		pr.issuer, err = dispense[*issuerClient](rpc, IssuerName)
	}
	if err != nil {
		fail(fmt.Errorf("plugins: plugin %q: %w", p.name, err))
		return
	}
	p.log.Debug("plugins: plugin started", "plugin", p.name, "pid", pr.pid, "protocol", client.NegotiatedVersion())
}

// call runs fn against the running process. An error names the plugin and
// the method. If the connection to the process failed, the process is
// marked for a restart on the next call and the error, transient, says
// so, adding lostNote (what the lost call may have done).
func (p *Plugin) call(ctx context.Context, method, lostNote string, fn func(*proc) error) error {
	pr, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(pr)
	if err == nil {
		return nil
	}
	if errors.Is(err, errAnswerTooLarge) {
		return fmt.Errorf("plugins: plugin %q %s: %w (%d bytes): %w", p.name, method, errAnswerTooLarge, MaxAnswer, provider.ErrInvalidRecord)
	}
	if errors.Is(err, errConnection) && ctx.Err() == nil && !pr.alive() {
		pr.lost.Store(true)
		if lostNote != "" {
			lostNote = "; " + lostNote
		}
		p.log.Warn("plugins: lost the plugin process during a call", "plugin", p.name, "pid", pr.pid, "method", method)
		return fmt.Errorf("plugins: plugin %q %s: the plugin process (pid %d) crashed or was killed during the call%s; it will be restarted on the next call: %w", p.name, method, pr.pid, lostNote, err)
	}
	return fmt.Errorf("plugins: plugin %q %s: %w", p.name, method, err)
}

// alive reports whether the process still runs and answers health checks.
func (pr *proc) alive() bool {
	if pr.client.Exited() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), capabilitiesTimeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(pr.rpc.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err == nil
}

// dispense returns the client shim go-plugin dispenses under name.
func dispense[T any](rpc plugin.ClientProtocol, name string) (T, error) {
	var zero T
	raw, err := rpc.Dispense(name)
	if err != nil {
		return zero, fmt.Errorf("cannot dispense its %s: %s", name, cleanMessage(err.Error()))
	}
	c, ok := raw.(T)
	if !ok {
		return zero, fmt.Errorf("unexpected %s client %T", name, raw)
	}
	return c, nil
}

// errAnswerTooLarge reports an answer the gRPC client refused because it
// is over MaxAnswer.
var errAnswerTooLarge = errors.New("its answer is larger than a plugin may send")

// answerError decodes the error of a call into the plugin: an answer over
// MaxAnswer, which the gRPC client refuses with ResourceExhausted (a code
// no plugin sends: toStatus never chooses it), or what the plugin said.
func answerError(err error) error {
	if status.Code(err) == codes.ResourceExhausted {
		return errAnswerTooLarge
	}
	return fromStatus(err)
}
