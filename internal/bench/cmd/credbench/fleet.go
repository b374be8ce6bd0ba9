package main

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/bench"
	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// The storm scales the engine down to lifetimes of seconds, as the
// engine's own multi-process stress test does: 8-second pairs refreshed in
// their last 4 seconds (less up to 10% jitter), so a generation lasts about
// 4 seconds. The issuer timeout is 2.5 seconds rather than the stress
// test's one: on a loaded 2-core machine a loopback answer can stall for
// over a second, and the holder's retry of a maybe-delivered call is a
// reuse to an issuer without a reuse grace period, such as the dev issuer.
const (
	stormLifetime = 8 * time.Second
	stormProbes   = 4 // timeline probes per worker process
)

func stormOptions(journal string) func(*refresh.Options) {
	return func(o *refresh.Options) {
		o.RefreshFraction = 0.5
		o.RefreshFloor = 4 * time.Second
		o.MinValidity = 500 * time.Millisecond
		o.LeaseDuration = 6 * time.Second
		o.IssuerTimeout = 2500 * time.Millisecond
		o.ClockSkew = 500 * time.Millisecond
		o.RetryBackoff = 100 * time.Millisecond
		o.MaxRetryBackoff = time.Second
		o.JournalDir = journal
	}
}

// FleetResult is one fleet storm: processes x goroutines sharing one
// credential over several generations.
type FleetResult struct {
	Backend     string  `json:"backend"`
	Processes   int     `json:"processes"`
	Goroutines  int     `json:"goroutines_per_process"`
	Probes      int     `json:"probes_per_process"`
	LifetimeS   float64 `json:"pair_lifetime_s"`
	DurationS   float64 `json:"duration_s"`
	TargetGens  uint64  `json:"target_generations"`
	Generations uint64  `json:"generations_committed"`

	// From the dev issuer's counters.
	IssuerRefreshes    uint64  `json:"issuer_refreshes"`
	IssuerAttempts     uint64  `json:"issuer_refresh_attempts"`
	Rejected           uint64  `json:"issuer_rejected"`
	Reuses             uint64  `json:"issuer_reuses"`
	FamiliesRevoked    uint64  `json:"issuer_families_revoked"`
	CallsPerGeneration float64 `json:"issuer_calls_per_generation"`

	// From the callers (internal/fleet's checked goroutines).
	Calls            int64      `json:"calls"`
	Errors           int64      `json:"errors"`
	Invalid          int64      `json:"invalid_pairs_served"`
	Regressions      int64      `json:"generation_regressions"`
	StoreRegressions int        `json:"store_regressions"`
	Forks            int        `json:"forks"`
	NewGeneration    Latency    `json:"latency_new_generation"`
	Cached           Latency    `json:"latency_cached"`
	InFlight         Latency    `json:"probe_latency_refresh_in_flight"`
	Quiet            Latency    `json:"probe_latency_no_refresh"`
	RefreshWindow    bench.Dist `json:"refresh_in_flight_duration"`
	SingleRefresh    bench.Dist `json:"single_uncontended_refresh"`
	ProbeErrors      int64      `json:"probe_errors"`
	ErrorKinds       []string   `json:"error_kinds,omitempty"`
	InvalidSamples   []string   `json:"invalid_samples,omitempty"`
	RejectReasons    []string   `json:"issuer_reject_reasons,omitempty"`
	Notes            []string   `json:"notes,omitempty"`

	timeline *stormTimeline
}

// Latency summarises a histogram in microseconds.
type Latency struct {
	N     uint64  `json:"n"`
	P50Us float64 `json:"p50_us"`
	P99Us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
}

func latencyOf(h *fleet.Histogram) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{N: h.Count(), P50Us: us(h.Quantile(0.5)), P99Us: us(h.Quantile(0.99)), MaxUs: us(h.Max())}
}

// stormTimeline is what the chart draws, in seconds from the start.
type stormTimeline struct {
	Backend   string
	End       float64
	Issuer    []float64 // successful issuer refreshes (dev issuer's log)
	Committed []float64 // commits, as the committing worker saw them
	Windows   [][2]float64
	Buckets   []latencyBucket
}

// latencyBucket is the probes' latency in one 100ms slice of the run.
type latencyBucket struct {
	At          float64
	P50Us       float64
	P99Us       float64
	MaxUs       float64
	N           uint64
	HasInFlight bool
}

// fleetStorm runs the storm on the file backend and on moto and draws
// bench/fleet.svg.
func fleetStorm(ctx context.Context, r *Results, out string, quick bool) error {
	var tls []*stormTimeline
	for _, backend := range []string{"file", "awssm"} {
		start := time.Now()
		fr, err := storm(ctx, backend, quick)
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		fmt.Fprintf(os.Stderr, "credbench:   %s storm: %d generations, %d issuer refreshes in %v\n", backend, fr.Generations, fr.IssuerRefreshes, time.Since(start).Round(time.Millisecond))
		r.Fleet = append(r.Fleet, fr)
		r.Notes = append(r.Notes, fr.Notes...)
		tls = append(tls, fr.timeline)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "fleet.svg"), []byte(fleetSVG(tls)), 0o644)
}

// issuerLog records when the dev issuer answered refreshes, from its log
// lines (which carry no token).
type issuerLog struct {
	mu        sync.Mutex
	refreshed []time.Time
	refused   map[string]int // by reason
}

func (l *issuerLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *issuerLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *issuerLog) WithGroup(string) slog.Handler            { return l }
func (l *issuerLog) Handle(_ context.Context, rec slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch rec.Message {
	case "dev: refreshed":
		l.refreshed = append(l.refreshed, rec.Time)
	case "dev: refresh refused":
		reason := "unknown"
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "reason" {
				reason = a.Value.String()
			}
			return true
		})
		if l.refused == nil {
			l.refused = map[string]int{}
		}
		l.refused[reason]++
	}
	return nil
}

// reasons lists the refusals as "N x reason".
func (l *issuerLog) reasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for r, n := range l.refused {
		out = append(out, fmt.Sprintf("%d x %s", n, r))
	}
	sort.Strings(out)
	return out
}

func (l *issuerLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.refreshed...)
}

// stormBackend opens the backend by name: file or awssm (moto).
func stormBackend(name string) (provider.Backend, error) {
	switch name {
	case "file":
		return file.New()
	case "awssm":
		if os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") == "" {
			return nil, errors.New("AWS_ENDPOINT_URL_SECRETS_MANAGER is unset: run under scripts/testenv.sh (make bench does)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return awssm.NewFromConfig(ctx)
	}
	return nil, fmt.Errorf("unknown backend %q", name)
}

// storeKey returns a fresh key for backend under dir.
func storeKey(backend, dir, name string) string {
	if backend == "file" {
		return filepath.Join(dir, name+".json")
	}
	return fmt.Sprintf("credbench/%s-%d", name, time.Now().UnixNano())
}

func storm(ctx context.Context, backend string, quick bool) (FleetResult, error) {
	procs, goroutines, gens, limit := 8, 64, uint64(10), 70*time.Second
	if quick {
		procs, goroutines, gens, limit = 4, 16, 4, 40*time.Second
	}
	fr := FleetResult{Backend: backend, Processes: procs, Goroutines: goroutines, Probes: stormProbes, LifetimeS: stormLifetime.Seconds(), TargetGens: gens}
	dir, err := os.MkdirTemp("", "credbench-fleet-*")
	if err != nil {
		return fr, err
	}
	defer os.RemoveAll(dir)
	b, err := stormBackend(backend)
	if err != nil {
		return fr, err
	}
	if fr.SingleRefresh, fr.Notes, err = singleRefresh(ctx, b, backend, dir); err != nil {
		return fr, fmt.Errorf("single refresh: %w", err)
	}

	ilog := &issuerLog{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0", func(o *dev.Options) { o.Logger = slog.New(ilog) })
	if err != nil {
		return fr, err
	}
	defer srv.Close()
	key := storeKey(backend, dir, "storm")
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: stormLifetime})
	if err != nil {
		return fr, err
	}
	v, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		return fr, err
	}
	if _, err := b.CompareAndSwap(ctx, key, "", v); err != nil {
		return fr, fmt.Errorf("store the first pair: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fr, err
	}
	probeDir := filepath.Join(dir, "probes")
	if err := os.Mkdir(probeDir, 0o700); err != nil {
		return fr, err
	}
	const startDelay = 2 * time.Second
	spec := fleet.Spec{
		Command:     func(int) *exec.Cmd { return exec.Command(exe, "-fleet-worker") },
		Processes:   procs,
		Goroutines:  goroutines,
		Generations: gens,
		Duration:    limit,
		StartDelay:  startDelay,
		MinValidity: 500 * time.Millisecond,
		Interval:    5 * time.Millisecond,
		// A broken lineage ends the run early; the report shows it.
		StopOnLineageBroken: true,
		Params: map[string]string{
			"backend": backend, "key": key, "devAddr": srv.Addr(), "journal": filepath.Join(dir, "journal"),
			"probeDir": probeDir, "probes": strconv.Itoa(stormProbes), "gens": strconv.FormatUint(gens, 10),
			"deadline": time.Now().Add(startDelay + limit).Format(time.RFC3339Nano),
		},
	}
	poll := fleet.Poll(b, key, 100*time.Millisecond)
	f, err := fleet.Start(ctx, spec)
	if err != nil {
		poll.Stop()
		return fr, err
	}
	res, werr := f.Wait(false)
	_, storeRegress, _ := poll.Stop()
	if werr != nil {
		return fr, werr
	}
	total := &res.Total
	fr.DurationS = total.End.Sub(total.Start).Seconds()

	entry, err := b.Load(ctx, key)
	if err != nil {
		return fr, err
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		return fr, err
	}
	st := srv.Stats()
	fr.Generations = rec.Pair.Generation
	fr.IssuerRefreshes, fr.IssuerAttempts, fr.Rejected, fr.Reuses, fr.FamiliesRevoked = st.Refreshes, st.RefreshAttempts, st.Rejected, st.Reuses, st.FamiliesRevoked
	if fr.Generations > 0 {
		fr.CallsPerGeneration = float64(st.RefreshAttempts) / float64(fr.Generations)
	}
	fr.Calls, fr.Errors, fr.Invalid, fr.Regressions = total.Calls, total.Errors, total.Invalid, total.Regressions
	fr.StoreRegressions, fr.Forks = len(storeRegress), len(total.Forks())
	fr.NewGeneration, fr.Cached = latencyOf(&total.Waited), latencyOf(&total.Cached)

	probes, err := readProbes(probeDir, procs)
	if err != nil {
		return fr, err
	}
	for _, pd := range probes {
		fr.ProbeErrors += pd.Errors
	}
	for k, n := range total.ErrorKinds {
		fr.ErrorKinds = append(fr.ErrorKinds, fmt.Sprintf("%d x %s", n, k))
	}
	sort.Strings(fr.ErrorKinds)
	fr.InvalidSamples = total.InvalidSamples
	fr.RejectReasons = ilog.reasons()
	fr.timeline = analyseProbes(&fr, probes, f.Start, ilog.times())
	fr.timeline.Backend = backend
	return fr, nil
}

// singleRefresh times forced refreshes of one engine, alone, on the same
// backend against its own dev issuer: what one refresh costs when nobody
// else is calling. A refresh that fails (a stalled machine can break a
// lineage, see stormOptions) is reported in notes and the series goes on
// with a fresh pair.
func singleRefresh(ctx context.Context, b provider.Backend, backend, dir string) (bench.Dist, []string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return bench.Dist{}, nil, err
	}
	defer srv.Close()
	iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = srv.Addr(), true })
	if err != nil {
		return bench.Dist{}, nil, err
	}
	var (
		ds    []time.Duration
		notes []string
	)
	for attempt := 0; len(ds) < 20; attempt++ {
		if attempt == 3 {
			return bench.Dist{}, notes, fmt.Errorf("three series of refreshes failed: %v", notes)
		}
		key := storeKey(backend, dir, fmt.Sprintf("single%d", attempt))
		first, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
		if err != nil {
			return bench.Dist{}, notes, err
		}
		v, _ := (&provider.Record{Pair: first}).Encode()
		if _, err := b.CompareAndSwap(ctx, key, "", v); err != nil {
			return bench.Dist{}, notes, err
		}
		e, err := refresh.New(b, iss, key, stormOptions(filepath.Join(dir, "journal-single")))
		if err != nil {
			return bench.Dist{}, notes, err
		}
		if _, err := e.Credential(ctx); err != nil {
			e.Close()
			return bench.Dist{}, notes, err
		}
		for i := -2; len(ds) < 20; i++ {
			t0 := time.Now()
			if _, err := e.Refresh(ctx); err != nil {
				notes = append(notes, fmt.Sprintf("single refresh on %s: refresh %d failed, series restarted with a fresh pair: %v", backend, i+3, err))
				break
			}
			if i >= 0 {
				ds = append(ds, time.Since(t0))
			}
		}
		e.Close()
	}
	return bench.Summarise(ds), notes, nil
}

// probeData is what one worker process writes for the parent: every call
// its probe goroutines made and the refreshes it ran.
type probeData struct {
	At      []int64 // call start, Unix nanoseconds
	Latency []int64 // nanoseconds
	// Refreshes are [refresh_started, committed] in Unix nanoseconds, for
	// the refreshes this process ran itself.
	Refreshes [][2]int64
	// Errors counts probe calls that failed.
	Errors int64
}

func probeFile(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("probe-%d.gob", i)) }

func readProbes(dir string, procs int) ([]probeData, error) {
	var out []probeData
	for i := 0; i < procs; i++ {
		f, err := os.Open(probeFile(dir, i))
		if err != nil {
			return nil, fmt.Errorf("worker %d wrote no probe data: %w", i, err)
		}
		var d probeData
		err = gob.NewDecoder(f).Decode(&d)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("worker %d probe data: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// analyseProbes splits the probes' calls into those that overlapped a
// refresh in flight anywhere in the fleet and the rest, and builds the
// chart's timeline.
func analyseProbes(fr *FleetResult, probes []probeData, start time.Time, issuer []time.Time) *stormTimeline {
	sec := func(ns int64) float64 { return float64(ns-start.UnixNano()) / 1e9 }
	tl := &stormTimeline{End: fr.DurationS}
	var windows [][2]int64
	var wd []time.Duration
	for _, p := range probes {
		windows = append(windows, p.Refreshes...)
	}
	sort.Slice(windows, func(i, j int) bool { return windows[i][0] < windows[j][0] })
	for _, w := range windows {
		tl.Windows = append(tl.Windows, [2]float64{sec(w[0]), sec(w[1])})
		tl.Committed = append(tl.Committed, sec(w[1]))
		wd = append(wd, time.Duration(w[1]-w[0]))
	}
	sort.Float64s(tl.Committed)
	fr.RefreshWindow = bench.Summarise(wd)
	for _, t := range issuer {
		tl.Issuer = append(tl.Issuer, sec(t.UnixNano()))
	}
	sort.Float64s(tl.Issuer)

	var inFlight, quiet fleet.Histogram
	buckets := map[int]*fleet.Histogram{}
	bucketIn := map[int]bool{}
	for _, p := range probes {
		for i, at := range p.At {
			d := time.Duration(p.Latency[i])
			end := at + p.Latency[i]
			// The windows are few (one per generation): a linear scan is
			// cheap enough.
			over := false
			for _, w := range windows {
				if at <= w[1] && end >= w[0] {
					over = true
					break
				}
			}
			if over {
				inFlight.Record(d)
			} else {
				quiet.Record(d)
			}
			s := sec(at)
			if s < 0 {
				continue
			}
			k := int(s * 10)
			h := buckets[k]
			if h == nil {
				h = &fleet.Histogram{}
				buckets[k] = h
			}
			h.Record(d)
			bucketIn[k] = bucketIn[k] || over
			tl.End = max(tl.End, s)
		}
	}
	fr.InFlight, fr.Quiet = latencyOf(&inFlight), latencyOf(&quiet)
	keys := make([]int, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		l := latencyOf(buckets[k])
		tl.Buckets = append(tl.Buckets, latencyBucket{At: float64(k) / 10, P50Us: l.P50Us, P99Us: l.P99Us, MaxUs: l.MaxUs, N: l.N, HasInFlight: bucketIn[k]})
	}
	return tl
}

// fleetWorker is main's worker mode: it builds this process's share of a
// storm from the parameters the parent passed (internal/fleet runs it).
func fleetWorker(w fleet.Worker) (fleet.Target, error) {
	p := w.Params
	b, err := stormBackend(p["backend"])
	if err != nil {
		return fleet.Target{}, err
	}
	iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = p["devAddr"], true })
	if err != nil {
		return fleet.Target{}, err
	}
	n, _ := strconv.Atoi(p["probes"])
	gens, _ := strconv.ParseUint(p["gens"], 10, 64)
	deadline, err := time.Parse(time.RFC3339Nano, p["deadline"])
	if err != nil {
		return fleet.Target{}, fmt.Errorf("param deadline: %w", err)
	}
	pr := &prober{n: n, gens: gens, deadline: deadline, path: probeFile(p["probeDir"], w.Index)}
	return fleet.Target{
		Backend: b, Issuer: iss, Key: p["key"],
		Options: []func(*refresh.Options){stormOptions(p["journal"]), func(o *refresh.Options) {
			// Applied after the fleet worker's own options: keep its
			// counter and note when this process's refreshes run.
			pr.next = o.Metrics
			o.Metrics = pr
		}},
		// Warm the cache before the goroutines start, so that their first
		// calls measure the shared credential and not the process's
		// start-up load.
		Before: func(ctx context.Context, e *refresh.Engine) error {
			if _, err := e.Credential(ctx); err != nil {
				return err
			}
			pr.start(e)
			return nil
		},
		Close: pr.finish,
	}, nil
}

// prober runs a worker's probe goroutines, which call Credential like the
// fleet's own goroutines and timestamp every call, and records the
// refreshes the process runs (it is the engine's Metrics).
type prober struct {
	n        int
	gens     uint64
	deadline time.Time
	path     string
	next     refresh.Metrics

	stop atomic.Bool
	wg   sync.WaitGroup

	mu      sync.Mutex
	started int64
	data    probeData
}

func (p *prober) Count(key string, ev refresh.Event) {
	now := time.Now().UnixNano()
	p.mu.Lock()
	switch ev {
	case refresh.EventRefreshStarted:
		p.started = now
	case refresh.EventCommitted:
		if p.started != 0 {
			p.data.Refreshes = append(p.data.Refreshes, [2]int64{p.started, now})
			p.started = 0
		}
	}
	p.mu.Unlock()
	p.next.Count(key, ev)
}

func (p *prober) SecondsToExpiry(key string, s float64) { p.next.SecondsToExpiry(key, s) }

func (p *prober) start(e *refresh.Engine) {
	for i := 0; i < p.n; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var at, lat []int64
			var errs int64
			for !p.stop.Load() && time.Now().Before(p.deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				pair, err := e.Credential(ctx)
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs++
				}
				if errors.Is(err, provider.ErrLineageBroken) {
					break
				}
				if err == nil {
					at, lat = append(at, t0.UnixNano()), append(lat, int64(d))
					if p.gens > 0 && pair.Generation >= p.gens {
						break
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.mu.Lock()
			p.data.At = append(p.data.At, at...)
			p.data.Latency = append(p.data.Latency, lat...)
			p.data.Errors += errs
			p.mu.Unlock()
		}()
	}
}

func (p *prober) finish() error {
	p.stop.Store(true)
	p.wg.Wait()
	f, err := os.OpenFile(p.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	p.mu.Lock()
	err = gob.NewEncoder(f).Encode(&p.data)
	p.mu.Unlock()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
