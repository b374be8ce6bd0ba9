package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/credhelper/credhelper/internal/testexec"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec describes a fleet run.
type Spec struct {
	// TestName is the test function the workers run (t.Name() of a
	// top-level test); required unless Command is set.
	TestName string
	// Command, when set, returns the command for worker i instead of
	// re-executing this test binary.
	Command func(i int) *exec.Cmd
	// Processes and Goroutines size the fleet; defaults 4 and 16.
	Processes, Goroutines int
	// Generations stops a worker once it has been served this generation;
	// 0 runs until the deadline.
	Generations uint64
	// Duration bounds the run, from the common start; required.
	Duration time.Duration
	// StartDelay is how long after Start the workers begin calling, so
	// that slow-starting processes begin together; default 1s.
	StartDelay time.Duration
	// MinValidity is the least validity a served pair must have left
	// (the engine's MinValidity).
	MinValidity time.Duration
	// Interval is each goroutine's pause between calls; default 2ms.
	Interval time.Duration
	// CallTimeout bounds each Credential call; default 10s.
	CallTimeout time.Duration
	// StopOnLineageBroken ends a goroutine when a call fails with
	// provider.ErrLineageBroken.
	StopOnLineageBroken bool
	// Params are handed to every worker's build function.
	Params map[string]string
	// Env is added to the workers' environment.
	Env []string
	// Stderr receives the workers' stderr; default os.Stderr.
	Stderr io.Writer
}

// Proc is one worker process.
type Proc struct {
	Index int
	cmd   *exec.Cmd
	out   bytes.Buffer
	done  chan struct{}
	err   error

	// Set when the process has exited (after Wait).
	Report *Report
	// Signal is the signal that killed the process, 0 if it exited.
	Signal syscall.Signal
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Fleet is a started fleet run.
type Fleet struct {
	Procs []*Proc
	Start time.Time // when the workers begin calling
}

// Result is a finished run.
type Result struct {
	Procs []*Proc
	// Total merges every report that arrived.
	Total Report
}

func (s *Spec) defaults() error {
	if s.Processes <= 0 {
		s.Processes = 4
	}
	if s.Goroutines <= 0 {
		s.Goroutines = 16
	}
	if s.StartDelay <= 0 {
		s.StartDelay = time.Second
	}
	if s.Interval <= 0 {
		s.Interval = 2 * time.Millisecond
	}
	if s.CallTimeout <= 0 {
		s.CallTimeout = 10 * time.Second
	}
	if s.Stderr == nil {
		s.Stderr = os.Stderr
	}
	switch {
	case s.Duration <= 0:
		return errors.New("fleet: Spec.Duration must be positive")
	case s.TestName == "" && s.Command == nil:
		return errors.New("fleet: Spec.TestName or Spec.Command is required")
	}
	return nil
}

// testCommand re-executes this test binary running exactly the test name.
func testCommand(name string) *exec.Cmd { return testexec.Command(name, 10*time.Minute) }

// Start starts the worker processes; they begin calling StartDelay later.
func Start(ctx context.Context, spec Spec) (*Fleet, error) {
	if err := spec.defaults(); err != nil {
		return nil, err
	}
	start := time.Now().Add(spec.StartDelay)
	f := &Fleet{Start: start}
	for i := 0; i < spec.Processes; i++ {
		cfg := workerConfig{
			Index: i, Goroutines: spec.Goroutines, Generations: spec.Generations,
			StartAt: start, Deadline: start.Add(spec.Duration),
			MinValidity: spec.MinValidity, Interval: spec.Interval, CallTimeout: spec.CallTimeout,
			StopOnLineageBroken: spec.StopOnLineageBroken, Params: spec.Params,
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		var cmd *exec.Cmd
		if spec.Command != nil {
			cmd = spec.Command(i)
		} else {
			cmd = testCommand(spec.TestName)
		}
		cmd.Env = append(append(os.Environ(), spec.Env...), envWorker+"="+string(raw))
		p := &Proc{Index: i, cmd: cmd, done: make(chan struct{})}
		cmd.Stdout = &p.out
		cmd.Stderr = spec.Stderr
		if err := cmd.Start(); err != nil {
			f.Kill()
			return nil, fmt.Errorf("fleet: start worker %d: %w", i, err)
		}
		go func() {
			p.err = cmd.Wait()
			close(p.done)
		}()
		f.Procs = append(f.Procs, p)
	}
	go func() {
		select {
		case <-ctx.Done():
			f.Kill()
		case <-f.allDone():
		}
	}()
	return f, nil
}

func (f *Fleet) allDone() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for _, p := range f.Procs {
			<-p.done
		}
		close(ch)
	}()
	return ch
}

// Kill SIGKILLs every worker still running.
func (f *Fleet) Kill() {
	for _, p := range f.Procs {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
		}
	}
}

// Wait waits for every worker and collects the reports. A worker that
// exited without a report, or failed, is an error unless it was killed by
// a signal (then Proc.Signal says which) and allowKilled is set.
func (f *Fleet) Wait(allowKilled bool) (*Result, error) {
	res := &Result{Procs: f.Procs}
	res.Total.Process = -1
	var errs []error
	for _, p := range f.Procs {
		<-p.done
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.Signal = ws.Signal()
			}
		}
		p.Report = parseReport(p.out.Bytes())
		switch {
		case p.Signal != 0 && allowKilled:
		case p.err != nil:
			errs = append(errs, fmt.Errorf("fleet: worker %d (pid %d): %v; stdout: %s", p.Index, p.PID(), p.err, tail(p.out.Bytes())))
		case p.Report == nil:
			errs = append(errs, fmt.Errorf("fleet: worker %d (pid %d) printed no report; stdout: %s", p.Index, p.PID(), tail(p.out.Bytes())))
		case p.Report.Fatal != "":
			errs = append(errs, fmt.Errorf("fleet: worker %d: %s", p.Index, p.Report.Fatal))
		}
		if p.Report != nil {
			res.Total.Merge(p.Report)
		}
	}
	return res, errors.Join(errs...)
}

// Run starts a fleet and waits for it; every worker must exit cleanly
// with a report.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	f, err := Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return f.Wait(false)
}

func parseReport(out []byte) *Report {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), reportMarker)
		if !ok {
			continue
		}
		var r Report
		if json.Unmarshal([]byte(rest), &r) != nil {
			return nil
		}
		return &r
	}
	return nil
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
