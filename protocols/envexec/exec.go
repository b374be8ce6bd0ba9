package envexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// RotateMode says what Run does when the credential rotates.
type RotateMode int

// Rotate modes.
const (
	// RotateNone leaves the child alone.
	RotateNone RotateMode = iota
	// RotateSignal sends the child Rotate.Signal.
	RotateSignal
	// RotateRestart stops the child and starts it again with the new
	// variables.
	RotateRestart
)

// Rotate is what to do when the credential rotates.
type Rotate struct {
	Mode   RotateMode
	Signal syscall.Signal // for RotateSignal
}

// String returns the form ParseRotate reads.
func (r Rotate) String() string {
	switch r.Mode {
	case RotateSignal:
		return "signal:" + signalName(r.Signal)
	case RotateRestart:
		return "restart"
	}
	return "none"
}

func signalName(s syscall.Signal) string {
	for n, v := range signalsByName {
		if v == s {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(s))
}

// ParseRotate reads "none", "restart" or "signal:NAME" (SIGHUP, HUP, hup
// or a number).
func ParseRotate(s string) (Rotate, error) {
	switch s {
	case "", "none":
		return Rotate{}, nil
	case "restart":
		return Rotate{Mode: RotateRestart}, nil
	}
	name, ok := strings.CutPrefix(s, "signal:")
	if !ok {
		return Rotate{}, fmt.Errorf("envexec: on-rotate %q: use none, restart or signal:NAME (e.g. signal:SIGHUP)", s)
	}
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
		return Rotate{Mode: RotateSignal, Signal: syscall.Signal(n)}, nil
	}
	if sig, ok := signalsByName[strings.TrimPrefix(strings.ToUpper(name), "SIG")]; ok {
		return Rotate{Mode: RotateSignal, Signal: sig}, nil
	}
	return Rotate{}, fmt.Errorf("envexec: on-rotate %q: unknown signal: use one of SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGQUIT, SIGALRM, SIGWINCH or a number", s)
}

// Options configure a Runner.
type Options struct {
	// Stdin, Stdout and Stderr are the child's; defaults os.Stdin,
	// os.Stdout and os.Stderr.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env is the environment the variables are added to; default
	// os.Environ().
	Env []string
	// Signals are forwarded to the child while it runs. The caller
	// subscribes to them (signal.Notify); nil forwards nothing.
	Signals <-chan os.Signal
	// OnRotate says what to do when the auth token changes; default
	// RotateNone, which never re-resolves the credential.
	OnRotate Rotate
	// CheckEvery is the longest time between two credential checks while
	// the child runs under OnRotate; default 30s.
	CheckEvery time.Duration
	// StopTimeout is how long a restart waits after SIGTERM before it
	// kills the child; default 10s.
	StopTimeout time.Duration
	// CheckTimeout bounds one credential check; default 30s.
	CheckTimeout time.Duration
	// Logger receives rotations and failed checks, never a token; default
	// silent.
	Logger *slog.Logger
}

// Runner runs commands with a credential in their environment.
type Runner struct {
	src  provider.CredentialProvider
	vars Vars
	opts Options
}

// New returns a Runner taking the credential from src and naming it with
// vars.
func New(src provider.CredentialProvider, vars Vars, optFns ...func(*Options)) (*Runner, error) {
	o := Options{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		CheckEvery: 30 * time.Second, StopTimeout: 10 * time.Second, CheckTimeout: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case src == nil:
		return nil, errors.New("envexec: credential source is nil")
	case o.CheckEvery <= 0 || o.StopTimeout <= 0 || o.CheckTimeout <= 0:
		return nil, errors.New("envexec: CheckEvery, StopTimeout and CheckTimeout must be positive")
	case o.Logger == nil:
		return nil, errors.New("envexec: Logger is nil: leave it unset for a silent logger")
	case o.OnRotate.Mode == RotateSignal && o.OnRotate.Signal <= 0:
		return nil, errors.New("envexec: OnRotate has no signal")
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if err := vars.Validate(); err != nil {
		return nil, err
	}
	return &Runner{src: src, vars: vars, opts: o}, nil
}

// ExitError is a failure to run the command, with the exit status a shell
// would report for it (127: not found, 126: not executable).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns Code.
func (e *ExitError) ExitCode() int { return e.Code }

// Run resolves the credential, runs argv with it in the environment and
// returns the child's exit status. An error means the child did not run
// (or could not be restarted); an *ExitError then carries 126 or 127, any
// other error means the credential could not be resolved.
func (r *Runner) Run(ctx context.Context, argv []string) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return 0, errors.New("envexec: no command to run: give it after --")
	}
	path, err := lookPath(argv[0])
	if err != nil {
		return 0, err
	}
	cur, err := r.src.Credential(ctx)
	if err != nil {
		return 0, err
	}
	cmd, err := r.start(path, argv, cur)
	if err != nil {
		return 0, err
	}
	done := make(chan *os.ProcessState, 1)
	wait := func(c *exec.Cmd) {
		_ = c.Wait()
		done <- c.ProcessState
	}
	go wait(cmd)

	bg := context.WithoutCancel(ctx)
	var check <-chan time.Time
	var checkTimer *time.Timer
	schedule := func() {
		if r.opts.OnRotate.Mode == RotateNone {
			return
		}
		d := r.opts.CheckEvery
		if q := cur.Remaining(time.Now()) / 4; q < d {
			d = max(q, min(time.Second, d))
		}
		checkTimer = time.NewTimer(d)
		check = checkTimer.C
	}
	schedule()
	defer func() {
		if checkTimer != nil {
			checkTimer.Stop()
		}
	}()
	var restarting bool
	var kill <-chan time.Time
	for {
		select {
		case sig := <-r.opts.Signals:
			// A signal from outside wins over a restart in progress: the
			// child's exit is then the answer.
			restarting = false
			_ = cmd.Process.Signal(sig)
		case <-kill:
			kill = nil
			_ = cmd.Process.Kill()
		case st := <-done:
			if !restarting {
				return exitStatus(st), nil
			}
			restarting, kill = false, nil
			if cmd, err = r.start(path, argv, cur); err != nil {
				return 0, err
			}
			r.opts.Logger.Info("envexec: restarted the command with the rotated credential", "pid", cmd.Process.Pid, "credential", cur)
			go wait(cmd)
		case <-check:
			cctx, cancel := context.WithTimeout(bg, r.opts.CheckTimeout)
			p, err := r.src.Credential(cctx)
			cancel()
			switch {
			case err != nil:
				r.opts.Logger.Warn("envexec: credential check failed; the command keeps the current one: " + err.Error())
			case p.AuthToken != cur.AuthToken && !restarting:
				cur = p
				r.rotate(cmd, &restarting, &kill)
			default:
				cur = p
			}
			schedule()
		}
	}
}

// rotate tells the child about a new credential.
func (r *Runner) rotate(cmd *exec.Cmd, restarting *bool, kill *<-chan time.Time) {
	switch r.opts.OnRotate.Mode {
	case RotateSignal:
		r.opts.Logger.Info("envexec: credential rotated; signalling the command", "signal", signalName(r.opts.OnRotate.Signal))
		_ = cmd.Process.Signal(r.opts.OnRotate.Signal)
	case RotateRestart:
		r.opts.Logger.Info("envexec: credential rotated; restarting the command")
		*restarting = true
		*kill = time.After(r.opts.StopTimeout)
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
}

func (r *Runner) start(path string, argv []string, p provider.Pair) (*exec.Cmd, error) {
	vars, err := r.vars.Values(p)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   argv,
		Env:    Environ(r.opts.Env, vars),
		Stdin:  r.opts.Stdin,
		Stdout: r.opts.Stdout,
		Stderr: r.opts.Stderr,
	}
	if err := cmd.Start(); err != nil {
		// The program was found, so this is a format error, a missing
		// interpreter or a permission: 126, as sh reports them.
		return nil, &ExitError{Code: 126, Err: fmt.Errorf("envexec: %s: cannot execute: %w", argv[0], unwrapExec(err))}
	}
	return cmd, nil
}

// lookPath finds argv[0] as sh would, mapping failures to 127 and 126.
func lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	if errors.Is(err, exec.ErrDot) {
		return "", &ExitError{Code: 126, Err: fmt.Errorf("envexec: %s: refusing to run a program found in the current directory through PATH: give its path (./%s)", name, name)}
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", &ExitError{Code: 127, Err: fmt.Errorf("envexec: %s: command not found", name)}
	}
	return "", &ExitError{Code: 126, Err: fmt.Errorf("envexec: %s: cannot execute: %w", name, unwrapExec(err))}
}

// unwrapExec strips exec.Error and PathError wrappers, whose text repeats
// the name.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}

// exitStatus is the child's exit status, or 128+N if signal N ended it.
func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
