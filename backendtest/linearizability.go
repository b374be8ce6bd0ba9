package backendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

// LinearizabilityOptions sizes the workload of RunLinearizability. A zero
// field takes its default.
type LinearizabilityOptions struct {
	// Processes is the number of child processes; default 3. With
	// Config.SkipMultiProcess they are groups of goroutines in the test
	// process instead.
	Processes int
	// Goroutines is the number of goroutines per process; default 4.
	Goroutines int
	// Ops is the number of operations each goroutine performs; default 40.
	Ops int
	// LoadRatio is the share of operations that are a Load; default 0.35.
	// A goroutine also loads right after it lost a CompareAndSwap.
	LoadRatio float64
	// StaleRatio is the share of operations that are a CompareAndSwap
	// against a version the goroutine knows to be outdated; default 0.1.
	StaleRatio float64
	// OpTimeout bounds each operation; default 30s. An operation that
	// runs out of time counts as one whose outcome is unknown.
	OpTimeout time.Duration
	// CancelRatio is the share of operations given a short random
	// deadline, below CancelWithin, so that some fail part-way with an
	// unknown outcome and the check covers what such failures leave
	// behind; default 0, none.
	CancelRatio float64
	// CancelWithin bounds those short deadlines; default 50ms.
	CancelWithin time.Duration
	// CheckTimeout bounds the linearizability check; default 60s. A check
	// that runs out of time fails the test: an undecided history proves
	// nothing.
	CheckTimeout time.Duration
	// Seed seeds the workload's choices; zero picks one at random. The
	// seed in use is logged, so a failing run's choices can be replayed
	// (the interleaving, of course, cannot).
	Seed uint64
}

func (o *LinearizabilityOptions) defaults() {
	if o.Processes <= 0 {
		o.Processes = 3
	}
	if o.Goroutines <= 0 {
		o.Goroutines = 4
	}
	if o.Ops <= 0 {
		o.Ops = 40
	}
	if o.LoadRatio <= 0 {
		o.LoadRatio = 0.35
	}
	if o.StaleRatio <= 0 {
		o.StaleRatio = 0.1
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 30 * time.Second
	}
	if o.CancelWithin <= 0 {
		o.CancelWithin = 50 * time.Millisecond
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 60 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64() | 1
	}
}

// RunLinearizability records a history of concurrent Loads and
// CompareAndSwaps on one key, from Processes child processes of Goroutines
// goroutines each, and checks with porcupine that the history is
// linearizable with respect to a versioned register: Load returns the value
// and version of the last successful CompareAndSwap (or ErrNotFound before
// the first), and CompareAndSwap succeeds exactly when its expected version
// is the current one.
//
// Children are started the way Run's multi-process race starts them: the
// test binary is re-executed for t's top-level test, with IsChild reporting
// true, and the RunLinearizability call in the child performs its share of
// the workload and prints its history on stdout. Config.New must therefore
// reach the same store from a child; Config.Key is called in the parent
// only. With Config.SkipMultiProcess the "processes" are goroutine groups
// of the test process. Config.Processes and Config.Goroutines size Run's
// races, not this workload: use optFns.
//
// On a violation the porcupine visualization (an HTML file) and the raw
// history are written to $TEST_ARTIFACTS, or to a fresh directory under
// os.TempDir that is kept, and the failure message names them.
//
// How outcomes are modelled:
//   - The key starts absent. Every CompareAndSwap writes a value no other
//     operation writes (Value(tag) with a unique tag), so a Load's value
//     identifies the write it observed; a value that does not decode to
//     such a tag is a violation.
//   - A backend chooses its version strings, so the version a successful
//     CompareAndSwap returns is part of its output: the register then holds
//     (tag, that version), and a later Load must return exactly that pair
//     unless another write intervened. Before checking, every version must
//     name a single value across the whole history (a reused version would
//     let a stale swap succeed).
//   - ErrConflict from a CompareAndSwap is legal when the expected version
//     is not the current one; ErrNotFound when the key is absent and the
//     expected version is not the zero Version.
//   - A CompareAndSwap that failed otherwise (timeout, transient error) may
//     or may not have happened: it returns "at infinity", so the checker
//     may place its effect anywhere after its invocation, including after
//     every other operation, where it is unobservable. If it happened its
//     version is unknown until a Load reports it, so the model holds an
//     unknown version that the first Load binds and that any expected
//     version may match (a sound, slightly weaker check).
//   - A Load that failed otherwise changes nothing and is left out.
//
// With LinearizabilityOptions.CancelRatio some operations get a deadline
// short enough to cut them off part-way, so the history also shows what a
// swap abandoned in flight leaves behind.
//
// Timestamps are wall-clock nanoseconds taken once per process and
// advanced by the monotonic clock, so they are ordered within a process
// and comparable across processes of one host.
func RunLinearizability(t *testing.T, cfg Config, optFns ...func(*LinearizabilityOptions)) {
	t.Helper()
	if runLinearizabilityChild(t, cfg) {
		return
	}
	if cfg.New == nil || cfg.Key == nil {
		t.Fatal("backendtest: Config.New and Config.Key are required")
	}
	if cfg.ReadOnly {
		t.Fatal("backendtest: RunLinearizability needs a writable backend; a read-only one has no concurrent history to check")
	}
	var o LinearizabilityOptions
	for _, fn := range optFns {
		fn(&o)
	}
	o.defaults()
	rep, err := checkLinearizability(t, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linearizable: %s", rep)
}

// linReport summarises one checked history.
type linReport struct {
	seed                            uint64
	processes, goroutines           int
	loads, cas                      int
	casOK, conflicts, notFound      int
	loadOK, loadMissing, errs       int
	errCAS, errSeen, shortDeadline  int
	errPermanent                    int
	maxConcurrent                   int
	workload, check                 time.Duration
	htmlPath, historyPath, checkRes string
}

func (r linReport) String() string {
	return fmt.Sprintf("%d ops (%d processes x %d goroutines; %d loads: %d found, %d not found; %d swaps: %d won, %d conflicts, %d not found; %d with unknown outcome: %d swaps, %d of them seen to take effect, %d errors not transient; %d ops given a short deadline), up to %d ops in flight, workload %v, check %v, seed %d",
		r.loads+r.cas+r.errs, r.processes, r.goroutines, r.loads, r.loadOK, r.loadMissing, r.cas, r.casOK, r.conflicts, r.notFound, r.errs, r.errCAS, r.errSeen, r.errPermanent,
		r.shortDeadline, r.maxConcurrent, r.workload.Round(time.Millisecond), r.check.Round(time.Millisecond), r.seed)
}

// errNotLinearizable marks a history the checker refused.
var errNotLinearizable = errors.New("history is not linearizable")

// checkLinearizability records a history per cfg and o and checks it.
func checkLinearizability(t testing.TB, cfg Config, o LinearizabilityOptions) (linReport, error) {
	rep := linReport{seed: o.Seed, processes: o.Processes, goroutines: o.Goroutines}
	key := cfg.Key(t)
	start := time.Now()
	var (
		ops []linOp
		err error
	)
	if cfg.SkipMultiProcess {
		ops = inProcessHistory(t, cfg, key, o)
	} else {
		ops, err = childHistories(t, key, o)
		if err != nil {
			return rep, err
		}
	}
	rep.workload = time.Since(start)
	if want := o.Processes * o.Goroutines * o.Ops; len(ops) != want {
		return rep, fmt.Errorf("backendtest: the history has %d operations, want %d (%d processes x %d goroutines x %d)", len(ops), want, o.Processes, o.Goroutines, o.Ops)
	}
	for _, op := range ops {
		if op.Deadline > 0 {
			rep.shortDeadline++
		}
		switch {
		case op.Result == resError:
			rep.errs++
			if !op.Transient {
				rep.errPermanent++
			}
			if op.Kind == opCAS {
				rep.errCAS++
			}
		case op.Kind == opLoad:
			rep.loads++
			if op.Result == resOK {
				rep.loadOK++
			} else {
				rep.loadMissing++
			}
		default:
			rep.cas++
			switch op.Result {
			case resOK:
				rep.casOK++
			case resConflict:
				rep.conflicts++
			case resNotFound:
				rep.notFound++
			}
		}
	}
	read := map[string]bool{}
	for _, op := range ops {
		if op.Kind == opLoad && op.Result == resOK {
			read[op.OutTag] = true
		}
	}
	for _, op := range ops {
		if op.Kind == opCAS && op.Result == resError && read[op.Tag] {
			rep.errSeen++
		}
	}
	rep.maxConcurrent = maxInFlight(ops)
	start = time.Now()
	res, info, err := checkHistory(ops, o.CheckTimeout)
	rep.check = time.Since(start)
	rep.checkRes = string(res)
	if err == nil && rep.casOK == 0 {
		err = errors.New("backendtest: no CompareAndSwap succeeded, so the history says nothing; see the errors logged above")
	}
	if err == nil {
		return rep, nil
	}
	logged := 0
	for _, op := range ops {
		if op.Result == resError && logged < 5 {
			logged++
			t.Logf("operation with unknown outcome: process %d goroutine %d %s: %s", op.Proc, op.G, op.Kind, op.Err)
		}
	}
	if rep.errs > logged {
		t.Logf("... and %d more operations with unknown outcomes (see the history)", rep.errs-logged)
	}
	dir, derr := artifactDir(t)
	if derr != nil {
		return rep, fmt.Errorf("%w (and saving the history failed: %v)", err, derr)
	}
	rep.historyPath = filepath.Join(dir, "history.jsonl")
	if werr := writeHistory(rep.historyPath, ops); werr != nil {
		return rep, fmt.Errorf("%w (and saving the history failed: %v)", err, werr)
	}
	if res == porcupine.Illegal || res == porcupine.Unknown {
		rep.htmlPath = filepath.Join(dir, "linearizability.html")
		if verr := porcupine.VisualizePath(registerModel, info, rep.htmlPath); verr != nil {
			return rep, fmt.Errorf("%w; history in %s (visualization failed: %v)", err, rep.historyPath, verr)
		}
		return rep, fmt.Errorf("%w; %s; visualization: %s; history: %s", err, rep, rep.htmlPath, rep.historyPath)
	}
	return rep, fmt.Errorf("%w; %s; history: %s", err, rep, rep.historyPath)
}

// artifactDir returns where a failing history is kept: $TEST_ARTIFACTS or
// a new directory under os.TempDir, which outlives the test (t.TempDir would
// not).
func artifactDir(t testing.TB) (string, error) {
	name := "linearizability-" + unsafePathChars.ReplaceAllString(t.Name(), "_")
	if base := os.Getenv("TEST_ARTIFACTS"); base != "" {
		dir := filepath.Join(base, name+"-"+time.Now().Format("20060102T150405.000"))
		return dir, os.MkdirAll(dir, 0o700)
	}
	return os.MkdirTemp("", name+"-")
}

var unsafePathChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func writeHistory(path string, ops []linOp) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// maxInFlight returns the largest number of operations whose intervals
// overlap at one instant: a history without overlap checks nothing
// concurrent.
func maxInFlight(ops []linOp) int {
	type ev struct {
		t     int64
		delta int
	}
	evs := make([]ev, 0, 2*len(ops))
	for _, op := range ops {
		evs = append(evs, ev{op.Call, 1}, ev{op.Return, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].delta > evs[j].delta // closed intervals: calls first
	})
	n, best := 0, 0
	for _, e := range evs {
		n += e.delta
		best = max(best, n)
	}
	return best
}

// Operation kinds and results in a recorded history.
const (
	opLoad = "load"
	opCAS  = "cas"

	resOK       = "ok"
	resNotFound = "notfound"
	resConflict = "conflict"
	resError    = "error" // outcome unknown
)

// linOp is one recorded operation, as a child prints it.
type linOp struct {
	Proc int    `json:"p"`
	G    int    `json:"g"`
	Kind string `json:"op"`
	// Expected is a CompareAndSwap's expected version; Tag the tag of the
	// value it writes; Stale marks an expected version the goroutine knew
	// to be outdated.
	Expected string `json:"expected,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Stale    bool   `json:"stale,omitempty"`
	// Call and Return are wall-clock nanoseconds.
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Result string `json:"result"`
	// OutTag is the tag of the value a Load returned; Version the version
	// a Load returned or a CompareAndSwap created.
	OutTag  string `json:"outTag,omitempty"`
	Version string `json:"version,omitempty"`
	// Err is the error of an operation whose outcome is unknown.
	Err string `json:"err,omitempty"`
	// Transient reports whether Err is a *provider.TransientError.
	Transient bool `json:"transient,omitempty"`
	// Deadline is the short deadline CancelRatio gave the operation.
	Deadline time.Duration `json:"deadline,omitempty"`
}

// undecodable is the OutTag of a loaded value that is not one this
// workload wrote; no write produces it, so the checker refuses it.
const undecodable = "!undecodable"

// tagOf recovers the tag Value(tag) was built from.
func tagOf(v []byte) string {
	r, err := provider.DecodeRecord(v)
	if err != nil {
		return undecodable
	}
	tag, ok := strings.CutPrefix(r.Pair.AuthToken, "auth-")
	if !ok || r.Pair.RefreshToken != "refresh-"+tag {
		return undecodable
	}
	return tag
}

// clock yields wall-clock nanoseconds that never go backwards within a
// process: the wall time at creation advanced by the monotonic clock.
type clock struct{ t0 time.Time }

func newClock() clock { return clock{time.Now()} }

func (c clock) now() int64 { return c.t0.UnixNano() + int64(time.Since(c.t0)) }

// workload runs goroutine g of process p against b and returns its
// history.
func workload(b provider.Backend, key string, p, g int, o LinearizabilityOptions, clk clock) []linOp {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(p)<<32|uint64(g)))
	ops := make([]linOp, 0, o.Ops)
	var (
		last     provider.Version   // the version this goroutine believes current
		seen     []provider.Version // versions it has observed, oldest first
		needLoad bool               // it lost a swap: reload first
	)
	observe := func(v provider.Version) {
		last = v
		if v != "" && (len(seen) == 0 || seen[len(seen)-1] != v) {
			seen = append(seen, v)
		}
	}
	for i := 0; i < o.Ops; i++ {
		op := linOp{Proc: p, G: g}
		timeout := o.OpTimeout
		if o.CancelRatio > 0 && rng.Float64() < o.CancelRatio {
			timeout = time.Duration(rng.Int64N(int64(o.CancelWithin)))
			op.Deadline = timeout
		}
		r := rng.Float64()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if needLoad || r < o.LoadRatio {
			needLoad = false
			op.Kind = opLoad
			op.Call = clk.now()
			e, err := b.Load(ctx, key)
			op.Return = clk.now()
			switch {
			case err == nil:
				op.Result, op.OutTag, op.Version = resOK, tagOf(e.Value), string(e.Version)
				observe(e.Version)
			case errors.Is(err, provider.ErrNotFound):
				op.Result = resNotFound
				last = ""
			default:
				op.Result, op.Err, op.Transient = resError, err.Error(), provider.IsTransient(err)
			}
		} else {
			op.Kind = opCAS
			op.Tag = fmt.Sprintf("p%d-g%d-o%d", p, g, i)
			expected := last
			if r < o.LoadRatio+o.StaleRatio {
				// A version this goroutine saw replaced, or "create"
				// while it believes the key exists.
				var stale []provider.Version
				for _, v := range seen {
					if v != last {
						stale = append(stale, v)
					}
				}
				switch {
				case len(stale) > 0:
					expected, op.Stale = stale[rng.IntN(len(stale))], true
				case last != "":
					expected, op.Stale = "", true
				}
			}
			op.Expected = string(expected)
			op.Call = clk.now()
			ver, err := b.CompareAndSwap(ctx, key, expected, Value(op.Tag))
			op.Return = clk.now()
			switch {
			case err == nil:
				op.Result, op.Version = resOK, string(ver)
				observe(ver)
			case errors.Is(err, provider.ErrConflict):
				op.Result = resConflict
				needLoad = true
			case errors.Is(err, provider.ErrNotFound):
				op.Result = resNotFound
				needLoad = true
			default:
				op.Result, op.Err, op.Transient = resError, err.Error(), provider.IsTransient(err)
				needLoad = true
			}
		}
		cancel()
		ops = append(ops, op)
	}
	return ops
}

// runProcess runs one process's goroutines against b.
func runProcess(b provider.Backend, key string, p int, o LinearizabilityOptions, clk clock) []linOp {
	hist := make([][]linOp, o.Goroutines)
	var wg sync.WaitGroup
	for g := range o.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hist[g] = workload(b, key, p, g, o, clk)
		}()
	}
	wg.Wait()
	var all []linOp
	for _, h := range hist {
		all = append(all, h...)
	}
	return all
}

// inProcessHistory runs every process's goroutines in the test process.
func inProcessHistory(t testing.TB, cfg Config, key string, o LinearizabilityOptions) []linOp {
	clk := newClock()
	backends := make([]provider.Backend, o.Processes)
	for p := range backends {
		backends[p] = cfg.New(t)
	}
	hist := make([][]linOp, o.Processes)
	var wg sync.WaitGroup
	for p := range o.Processes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hist[p] = runProcess(backends[p], key, p, o, clk)
		}()
	}
	wg.Wait()
	var all []linOp
	for _, h := range hist {
		all = append(all, h...)
	}
	return all
}

const (
	// envLinearizability carries a child's linChildSpec as JSON.
	envLinearizability = "CREDHELPER_BACKENDTEST_LINEARIZABILITY"
	historyMarker      = "BACKENDTEST-HISTORY "
)

// linChildSpec tells a child process its share of the workload.
type linChildSpec struct {
	Key     string                 `json:"key"`
	Proc    int                    `json:"proc"`
	Start   int64                  `json:"start"` // wall-clock nanoseconds
	Options LinearizabilityOptions `json:"options"`
}

// childHistories runs the workload in o.Processes child processes and
// merges their histories.
func childHistories(t testing.TB, key string, o LinearizabilityOptions) ([]linOp, error) {
	// The children run t's test again, and only it.
	// Children build their backend first (opening a plugin, reading the
	// environment), then start together so their operations overlap.
	start := time.Now().Add(2 * time.Second).UnixNano()
	type result struct {
		ops []linOp
		err error
	}
	results := make([]result, o.Processes)
	var wg sync.WaitGroup
	for p := range o.Processes {
		spec, err := json.Marshal(linChildSpec{Key: key, Proc: p, Start: start, Options: o})
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := testexec.Command(t.Name(), 5*time.Minute)
			cmd.Env = append(os.Environ(), envChild+"=1", envLinearizability+"="+string(spec))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				results[p].err = fmt.Errorf("backendtest: linearizability child process %d: %v; stderr: %s; stdout: %s", p, err, stderr.Bytes(), out)
				return
			}
			results[p].ops, results[p].err = parseHistory(out)
			if results[p].err != nil {
				results[p].err = fmt.Errorf("backendtest: linearizability child process %d: %w; stdout: %s", p, results[p].err, out)
			}
		}()
	}
	wg.Wait()
	var all []linOp
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		all = append(all, r.ops...)
	}
	return all, nil
}

// parseHistory extracts the operations a child printed.
func parseHistory(out []byte) ([]linOp, error) {
	var ops []linOp
	done := false
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, historyMarker)
		if !ok {
			continue
		}
		if rest == "done" {
			done = true
			continue
		}
		var op linOp
		if err := json.Unmarshal([]byte(rest), &op); err != nil {
			return nil, fmt.Errorf("unreadable history line %q: %v", line, err)
		}
		ops = append(ops, op)
	}
	if !done {
		return nil, errors.New("history incomplete: no end marker")
	}
	return ops, nil
}

// runLinearizabilityChild performs a child's share of the workload and
// reports whether this process is such a child.
func runLinearizabilityChild(t *testing.T, cfg Config) bool {
	env, ok := os.LookupEnv(envLinearizability)
	if !ok {
		return false
	}
	var spec linChildSpec
	if err := json.Unmarshal([]byte(env), &spec); err != nil {
		t.Fatalf("backendtest: bad %s: %v", envLinearizability, err)
	}
	b := cfg.New(t)
	time.Sleep(time.Until(time.Unix(0, spec.Start)))
	ops := runProcess(b, spec.Key, spec.Proc, spec.Options, newClock())
	var buf bytes.Buffer
	buf.WriteString("\n")
	for _, op := range ops {
		line, err := json.Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString(historyMarker)
		buf.Write(line)
		buf.WriteString("\n")
	}
	buf.WriteString(historyMarker + "done\n")
	os.Stdout.Write(buf.Bytes())
	return true
}

// The porcupine model: a versioned register.

// regInput is an operation's input.
type regInput struct {
	cas      bool
	expected string // CompareAndSwap: expected version
	tag      string // CompareAndSwap: tag of the value written
}

// regOutput is an operation's output.
type regOutput struct {
	result  string // resOK, resNotFound, resConflict or resError
	tag     string // Load: tag read
	version string // Load: version read; CompareAndSwap: version created
}

// regState is the register: absent, or a value's tag and its version,
// which is unknown after a CompareAndSwap whose outcome is unknown took
// effect, until a Load reports it.
type regState struct {
	present  bool
	tag      string
	version  string
	verKnown bool
}

// mayMatch reports whether a CompareAndSwap expecting expected may succeed
// on s; mayMismatch whether it may fail.
func (s regState) mayMatch(expected string) bool {
	if expected == "" {
		return !s.present
	}
	return s.present && (!s.verKnown || s.version == expected)
}

func (s regState) mayMismatch(expected string) bool {
	if expected == "" {
		return s.present
	}
	return !s.present || !s.verKnown || s.version != expected
}

func registerStep(state, input, output any) (bool, any) {
	s, in, out := state.(regState), input.(regInput), output.(regOutput)
	if !in.cas {
		switch out.result {
		case resNotFound:
			return !s.present, s
		case resOK:
			if !s.present || s.tag != out.tag || (s.verKnown && s.version != out.version) {
				return false, s
			}
			return true, regState{present: true, tag: s.tag, version: out.version, verKnown: true}
		}
		return false, s
	}
	switch out.result {
	case resOK:
		if !s.mayMatch(in.expected) {
			return false, s
		}
		return true, regState{present: true, tag: in.tag, version: out.version, verKnown: true}
	case resConflict:
		return s.mayMismatch(in.expected), s
	case resNotFound:
		return !s.present && in.expected != "", s
	case resError:
		// Returned at infinity: linearized last, it is unobservable, so
		// taking effect whenever it may is as general as choosing.
		if s.mayMatch(in.expected) {
			return true, regState{present: true, tag: in.tag}
		}
		return true, s
	}
	return false, s
}

var registerModel = porcupine.Model{
	Init: func() any { return regState{} },
	Step: registerStep,
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if !in.cas {
			if out.result == resOK {
				return fmt.Sprintf("load -> %s @%s", out.tag, shortVersion(out.version))
			}
			return "load -> " + out.result
		}
		res := out.result
		switch res {
		case resOK:
			res = "ok @" + shortVersion(out.version)
		case resError:
			res = "unknown"
		}
		return fmt.Sprintf("cas(%s, %s) -> %s", shortVersion(in.expected), in.tag, res)
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		switch {
		case !s.present:
			return "absent"
		case !s.verKnown:
			return s.tag + " @?"
		}
		return s.tag + " @" + shortVersion(s.version)
	},
}

// shortVersion abbreviates a long version (a content hash, an AWS version
// id) for the visualization.
func shortVersion(v string) string {
	if v == "" {
		return "none"
	}
	if len(v) > 14 {
		return v[:6] + "…" + v[len(v)-6:]
	}
	return v
}

// checkHistory checks ops: first that every version names one value, then
// linearizability. It returns porcupine's verdict and information for the
// visualization.
func checkHistory(ops []linOp, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo, error) {
	owner := map[string]string{}
	for _, op := range ops {
		if op.Result != resOK {
			continue
		}
		if op.Version == "" {
			return "", porcupine.LinearizationInfo{}, fmt.Errorf("backendtest: %w: %s by process %d goroutine %d succeeded with the zero version", errNotLinearizable, op.Kind, op.Proc, op.G)
		}
		tag := op.Tag
		if op.Kind == opLoad {
			tag = op.OutTag
		}
		if prev, ok := owner[op.Version]; ok && prev != tag {
			return "", porcupine.LinearizationInfo{}, fmt.Errorf("backendtest: %w: version %q names two different values, %s and %s", errNotLinearizable, op.Version, prev, tag)
		}
		owner[op.Version] = tag
	}
	history := make([]porcupine.Operation, 0, len(ops))
	goroutines := 0
	for _, op := range ops {
		goroutines = max(goroutines, op.G+1)
	}
	for _, op := range ops {
		if op.Kind == opLoad && op.Result == resError {
			continue // a failed Load changes nothing
		}
		ret := op.Return
		if op.Result == resError {
			ret = math.MaxInt64
		}
		history = append(history, porcupine.Operation{
			ClientId: op.Proc*goroutines + op.G,
			Input:    regInput{cas: op.Kind == opCAS, expected: op.Expected, tag: op.Tag},
			Call:     op.Call,
			Output:   regOutput{result: op.Result, tag: op.OutTag, version: op.Version},
			Return:   ret,
			Metadata: fmt.Sprintf("process %d goroutine %d%s", op.Proc, op.G, staleNote(op)),
		})
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, timeout)
	switch res {
	case porcupine.Ok:
		return res, info, nil
	case porcupine.Unknown:
		return res, info, fmt.Errorf("backendtest: the linearizability check did not finish within %v: use fewer operations", timeout)
	}
	return res, info, fmt.Errorf("backendtest: %w", errNotLinearizable)
}

func staleNote(op linOp) string {
	switch {
	case op.Stale:
		return ", stale expected version"
	case op.Err != "":
		return ", error: " + op.Err
	}
	return ""
}
