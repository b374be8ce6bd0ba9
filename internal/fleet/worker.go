package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// Environment of a worker process.
const (
	envWorker = "CREDHELPER_FLEET_WORKER" // JSON workerConfig
	// reportMarker starts the stdout line that carries a worker's Report.
	reportMarker = "FLEET-REPORT "
)

// Target is what a worker process drives: an engine over Backend and
// Issuer for Key, with Options applied after the worker's own (a metrics
// counter).
type Target struct {
	Backend provider.Backend
	Issuer  provider.Issuer
	Key     string
	Options []func(*refresh.Options)
	// Before, if set, runs once with the engine before the goroutines
	// start, for example to force a refresh that a failpoint interrupts.
	Before func(ctx context.Context, e *refresh.Engine) error
	// Close, if set, runs after the engine is closed.
	Close func() error
}

// Worker is what a worker process knows of its place in the fleet.
type Worker struct {
	// Index is the process's index in the fleet, from 0.
	Index int
	// Params are the Spec's Params.
	Params map[string]string
}

// workerConfig is the Spec's part a worker needs, passed in envWorker.
type workerConfig struct {
	Index               int               `json:"index"`
	Goroutines          int               `json:"goroutines"`
	Generations         uint64            `json:"generations"`
	StartAt             time.Time         `json:"startAt"`
	Deadline            time.Time         `json:"deadline"`
	MinValidity         time.Duration     `json:"minValidity"`
	Interval            time.Duration     `json:"interval"`
	CallTimeout         time.Duration     `json:"callTimeout"`
	StopOnLineageBroken bool              `json:"stopOnLineageBroken"`
	Params              map[string]string `json:"params"`
}

// IsWorker reports whether this process is a fleet worker; a TestMain can
// use it to skip set-up a worker does not need.
func IsWorker() bool { return os.Getenv(envWorker) != "" }

// Child runs this process's share of the fleet when it is a worker, with
// the Target that build returns, prints its Report on stdout and returns
// true. In any other process it returns false at once.
func Child(build func(w Worker) (Target, error)) bool {
	raw := os.Getenv(envWorker)
	if raw == "" {
		return false
	}
	var cfg workerConfig
	rep := &Report{PID: os.Getpid()}
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		rep.Fatal = fmt.Sprintf("fleet: bad %s: %v", envWorker, err)
	} else {
		rep.Process = cfg.Index
		runWorker(&cfg, build, rep)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		b, _ = json.Marshal(&Report{Process: cfg.Index, PID: os.Getpid(), Fatal: "fleet: encode report: " + err.Error()})
	}
	fmt.Fprintf(os.Stdout, "\n%s%s\n", reportMarker, b)
	return true
}

// eventCounter is the refresh.Metrics a worker installs.
type eventCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *eventCounter) Count(_ string, ev refresh.Event) {
	c.mu.Lock()
	c.m[string(ev)]++
	c.mu.Unlock()
}

func (c *eventCounter) SecondsToExpiry(string, float64) {}

// procState is shared by a worker's goroutines.
type procState struct {
	cfg    *workerConfig
	eng    *refresh.Engine
	maxGen atomic.Int64 // highest generation returned so far, -1 before any
	stop   atomic.Bool

	mu       sync.Mutex
	timeline []GenEvent
}

func runWorker(cfg *workerConfig, build func(Worker) (Target, error), rep *Report) {
	tgt, err := build(Worker{Index: cfg.Index, Params: cfg.Params})
	if err != nil {
		rep.Fatal = "fleet: build target: " + err.Error()
		return
	}
	if tgt.Close != nil {
		defer func() {
			if err := tgt.Close(); err != nil && rep.CloseError == "" {
				rep.CloseError = "target: " + err.Error()
			}
		}()
	}
	events := &eventCounter{m: map[string]int64{}}
	opts := append([]func(*refresh.Options){func(o *refresh.Options) { o.Metrics = events }}, tgt.Options...)
	eng, err := refresh.New(tgt.Backend, tgt.Issuer, tgt.Key, opts...)
	if err != nil {
		rep.Fatal = "fleet: refresh.New: " + err.Error()
		return
	}
	defer func() {
		if err := eng.Close(); err != nil {
			rep.CloseError = err.Error()
		}
		events.mu.Lock()
		rep.Events = events.m
		events.mu.Unlock()
	}()
	time.Sleep(time.Until(cfg.StartAt))
	if tgt.Before != nil {
		ctx, cancel := context.WithDeadline(context.Background(), cfg.Deadline)
		err := tgt.Before(ctx, eng)
		cancel()
		if err != nil {
			rep.Fatal = "fleet: Before: " + err.Error()
			return
		}
	}
	st := &procState{cfg: cfg, eng: eng}
	st.maxGen.Store(-1)
	parts := make([]*Report, cfg.Goroutines)
	var wg sync.WaitGroup
	rep.Start = time.Now()
	for i := range parts {
		parts[i] = &Report{}
		wg.Add(1)
		go func(r *Report) {
			defer wg.Done()
			st.loop(r)
		}(parts[i])
	}
	wg.Wait()
	rep.End = time.Now()
	rep.Goroutines = cfg.Goroutines
	for _, p := range parts {
		p.Process = cfg.Index
		rep.Merge(p)
	}
	rep.Process, rep.PID = cfg.Index, os.Getpid()
	rep.Timeline = st.timeline
	for i := range rep.Timeline {
		rep.Timeline[i].Process = cfg.Index
	}
}

// goroutineState is one goroutine's view.
type goroutineState struct {
	pairs   map[uint64]*PairSeen
	lastTok string
	lastOK  bool
	lastExp time.Time
	lastFP  string
}

func (st *procState) loop(r *Report) {
	cfg := st.cfg
	g := &goroutineState{pairs: map[uint64]*PairSeen{}}
	defer func() {
		for _, p := range g.pairs {
			r.addPair(*p)
		}
	}()
	for !st.stop.Load() && time.Now().Before(cfg.Deadline) {
		floor := st.maxGen.Load()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.CallTimeout)
		t0 := time.Now()
		p, err := st.eng.Credential(ctx)
		at := time.Now()
		cancel()
		d := at.Sub(t0)
		r.Calls++
		if err != nil {
			r.Errors++
			r.Failed.Record(d)
			r.addError(err.Error(), 1)
			if r.FirstError.IsZero() {
				r.FirstError = at
			}
			r.LastError = at
			if errors.Is(err, provider.ErrLineageBroken) {
				r.LineageBroken++
				if cfg.StopOnLineageBroken {
					return
				}
			}
			time.Sleep(cfg.Interval)
			continue
		}
		r.Served++
		gen := int64(p.Generation)
		if gen > floor {
			r.Waited.Record(d)
		} else {
			r.Cached.Record(d)
		}
		if gen < floor {
			r.Regressions++
		}
		st.check(r, g, p, at)
		for {
			cur := st.maxGen.Load()
			if gen <= cur {
				break
			}
			if st.maxGen.CompareAndSwap(cur, gen) {
				st.mu.Lock()
				st.timeline = append(st.timeline, GenEvent{At: at, Generation: p.Generation})
				st.mu.Unlock()
				break
			}
		}
		r.MaxGeneration = max(r.MaxGeneration, p.Generation)
		if cfg.Generations > 0 && p.Generation >= cfg.Generations {
			st.stop.Store(true)
			return
		}
		time.Sleep(cfg.Interval)
	}
}

// check verifies a served pair (I3) and records it.
func (st *procState) check(r *Report, g *goroutineState, p provider.Pair, at time.Time) {
	if p.AuthToken != g.lastTok {
		info, err := provider.ParseAuthToken(p.AuthToken)
		g.lastTok, g.lastOK, g.lastExp = p.AuthToken, err == nil && info.Endpoint != "", info.Expires
		g.lastFP = provider.Fingerprint(p.AuthToken)
		if err != nil {
			r.addInvalid(fmt.Sprintf("generation %d: auth token does not decode: %v", p.Generation, err))
		} else if info.Endpoint == "" {
			r.addInvalid(fmt.Sprintf("generation %d: auth token names no endpoint", p.Generation))
		}
	} else if !g.lastOK {
		r.addInvalid(fmt.Sprintf("generation %d: auth token does not decode", p.Generation))
	}
	if !p.ValidFor(at, st.cfg.MinValidity) {
		r.addInvalid(fmt.Sprintf("generation %d served with %v left, under MinValidity %v", p.Generation, p.ValidUntil.Sub(at), st.cfg.MinValidity))
	}
	if !g.lastExp.IsZero() && !at.Before(g.lastExp) {
		r.addInvalid(fmt.Sprintf("generation %d served %v after its auth token's own expiry", p.Generation, at.Sub(g.lastExp)))
	}
	left := p.ValidUntil.Sub(at)
	ps := g.pairs[p.Generation]
	if ps == nil || ps.Fingerprint != g.lastFP {
		if ps != nil { // a second pair under one generation: keep both
			r.addPair(*ps)
		}
		ps = &PairSeen{Generation: p.Generation, Fingerprint: g.lastFP, ValidUntil: p.ValidUntil, FirstServed: at, MinLeft: left}
		g.pairs[p.Generation] = ps
	}
	ps.LastServed = at
	ps.Count++
	ps.MinLeft = min(ps.MinLeft, left)
}
