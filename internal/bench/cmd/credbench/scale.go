package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// The scale run gives every profile the same lifetime and mints every pair
// in the same instant: the worst case for a thundering herd, where only
// each engine's own jitter (up to 50% of the refresh window, drawn once
// per engine) spreads the refreshes. A 90-second pair has a window of
// max(20s floor, 25% of 90s) = 22.5s, widened by the jitter to at most
// 33.75s, so every pair falls due between 56.25 and 67.5 seconds after
// minting, and again about 60 seconds after its refresh; the quiet part of
// the window leaves the agent up to about 45 seconds to warm up on a
// loaded machine.
const (
	scaleLifetime = 90 * time.Second
	scaleFloor    = 20 * time.Second
	scaleJitter   = 0.5 // refresh.Options' default, which the CLI keeps
	// quietUntil is when, after minting, the idle part of the window ends
	// (before the first pair falls due); windowEnd is when the window ends
	// (before the second round falls due).
	quietUntil = 55 * time.Second
	windowEnd  = 92 * time.Second
)

// scaleWindow is the refresh window of the scale run's pairs (the
// engine's rule without jitter).
func scaleWindow() time.Duration {
	return min(max(scaleFloor, scaleLifetime/4), scaleLifetime/2)
}

// ScaleResult is the agent's footprint at one profile count.
type ScaleResult struct {
	Profiles  int     `json:"profiles"`
	LifetimeS float64 `json:"pair_lifetime_s"`
	WarmupS   float64 `json:"warmup_s"`
	// WarmupCPUS is the CPU the agent used to start and warm every
	// profile.
	WarmupCPUS float64 `json:"warmup_cpu_s"`
	// RSS is VmRSS after warm-up and at the end of the window (after the
	// refreshes).
	RSSWarmKB int64 `json:"rss_after_warmup_kb"`
	RSSEndKB  int64 `json:"rss_end_kb"`
	// The split of RSSEndKB: allocated memory, and file pages mapped in
	// (the binary's code and read-only data, shared with every process
	// that runs it and dropped first under memory pressure).
	RSSEndAnonKB int64 `json:"rss_end_anon_kb"`
	RSSEndFileKB int64 `json:"rss_end_file_kb"`
	// WindowS is the measured window; CPUS the agent's utime+stime in it.
	// The split into idle and per-refresh CPU uses the threads' schedstat
	// run time, which has nanosecond resolution (utime+stime counts 10ms
	// ticks, too coarse for an idle agent).
	WindowS float64 `json:"window_s"`
	CPUS    float64 `json:"cpu_s"`
	// IdleCPUPerHourS is CPU per hour with nothing to refresh, from the
	// quiet part of the window; CPUPerRefreshMs the extra CPU of each
	// refresh in the rest.
	IdleCPUPerHourS float64 `json:"idle_cpu_s_per_hour"`
	CPUPerRefreshMs float64 `json:"cpu_ms_per_refresh"`
	// At this run's lifetimes, a profile refreshes about every 40s.
	RefreshesPerHour float64 `json:"refreshes_per_hour_at_bench_lifetimes"`
	CPUPerHourS      float64 `json:"cpu_s_per_hour_at_bench_lifetimes"`
	// At one-hour lifetimes (default window: the last 15 minutes), a
	// profile refreshes 4/3 times an hour.
	CPUPerHour1hS float64 `json:"cpu_s_per_hour_at_1h_lifetimes"`

	// From the dev issuer: refreshes in the window, when.
	Refreshes int    `json:"refreshes"`
	Rejected  uint64 `json:"issuer_rejected"`
	Reuses    uint64 `json:"issuer_reuses"`
	// The first round of refreshes: how widely it spread (first to last,
	// and the 5th to 95th percentile), the busiest second and the mean
	// per second over the round's span, and the coefficient of variation
	// of per-second counts over the whole window.
	SpreadS       float64  `json:"round_spread_s"`
	Spread90S     float64  `json:"round_spread_p5_p95_s"`
	JitterSpanS   float64  `json:"jitter_span_s"`
	MaxPerSecond  int      `json:"max_refreshes_in_one_second"`
	MeanPerSecond float64  `json:"mean_refreshes_per_second_over_window"`
	EvenPerSecond float64  `json:"even_spread_refreshes_per_second"`
	PeriodS       float64  `json:"refresh_period_s"`
	RejectReasons []string `json:"issuer_reject_reasons,omitempty"`
	Note          string   `json:"note,omitempty"`
	CVPerSecond   float64  `json:"cv_refreshes_per_second"`
	Busiest100ms  int      `json:"max_refreshes_in_100ms"`
	// UsableWindowS is the part of the window in which a pair can still
	// be refreshed before it drops below min_validity (window without
	// jitter, less min_validity); EvenUsablePerSecond spreads the profiles
	// evenly over it. Late counts first-round refreshes after that point.
	UsableWindowS       float64 `json:"usable_window_s"`
	EvenUsablePerSecond float64 `json:"even_spread_over_usable_window_per_second"`
	Late                int     `json:"refreshes_after_min_validity"`

	// Sinks: whether each profile had a JSON sink, and the latency from a
	// generation's commit (the agent's log) to its sink file renamed into
	// place (inotify), over the first round of refreshes.
	Sinks     bool    `json:"sinks,omitempty"`
	SinkN     int     `json:"sink_writes_measured,omitempty"`
	SinkP50Ms float64 `json:"sink_write_p50_ms,omitempty"`
	SinkP99Ms float64 `json:"sink_write_p99_ms,omitempty"`
	SinkMaxMs float64 `json:"sink_write_max_ms,omitempty"`
	// Reload: `credhelper agent reload` wall time with nothing changed
	// and with every profile changed (each restarts: engine closed, a new
	// one warmed from the store), and RSS after the latter.
	ReloadNoopMs     float64 `json:"reload_unchanged_ms"`
	ReloadAllMs      float64 `json:"reload_all_changed_ms"`
	RSSAfterReloadKB int64   `json:"rss_after_reload_kb"`
}

// scaleMinValidity is the scale run's min_validity.
const scaleMinValidity = 5 * time.Second

// sinkProfiles is the profile count whose agent also writes a JSON sink
// per profile (one run, so that the other counts measure the agent alone).
const sinkProfiles = 100

// agentScale runs one agent per profile count, side by side, each with its
// own dev issuer, and measures memory, CPU and when the refreshes land.
func agentScale(ctx context.Context, r *Results, bin string, quick bool) error {
	counts := []int{1, 100, 1000}
	if quick {
		counts = []int{1, 100}
	}
	res := make([]ScaleResult, len(counts))
	errs := make([]error, len(counts))
	var wg sync.WaitGroup
	for i, n := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = scaleOne(ctx, bin, n)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.Scale = res
	for _, s := range res {
		if s.Note != "" {
			r.Notes = append(r.Notes, s.Note)
		}
		for _, reason := range s.RejectReasons {
			r.Notes = append(r.Notes, fmt.Sprintf("agent with %d profiles: the dev issuer refused refreshes: %s", s.Profiles, reason))
		}
	}
	return nil
}

func scaleOne(ctx context.Context, bin string, n int) (ScaleResult, error) {
	sr := ScaleResult{Profiles: n, LifetimeS: scaleLifetime.Seconds(), JitterSpanS: scaleJitter * scaleWindow().Seconds()}
	ilog := &issuerLog{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0", func(o *dev.Options) { o.Logger = slog.New(ilog) })
	if err != nil {
		return sr, err
	}
	defer srv.Close()

	// Config first (the home directory holds the pairs too), then every
	// pair minted in one instant.
	home, err := newAgentHome("")
	if err != nil {
		return sr, err
	}
	defer home.remove()
	pairs, sinks := filepath.Join(home.dir, "pairs"), filepath.Join(home.dir, "sinks")
	for _, d := range []string{pairs, sinks} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return sr, err
		}
	}
	sr.Sinks = n == sinkProfiles
	writeConfig := func(minValidity time.Duration) error {
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "[defaults]\nissuer = \"dev:%s\"\nrefresh_floor = \"%v\"\nmin_validity = \"%v\"\n\n", srv.Addr(), scaleFloor, minValidity)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&cfg, "[profiles.p%04d]\nbackend = \"file:%s\"\n", i, filepath.Join(pairs, fmt.Sprintf("p%04d.json", i)))
			if sr.Sinks {
				fmt.Fprintf(&cfg, "[[profiles.p%04d.sink]]\npath = \"%s\"\nformat = \"json\"\n", i, filepath.Join(sinks, fmt.Sprintf("p%04d.json", i)))
			}
			cfg.WriteString("\n")
		}
		return os.WriteFile(home.config, []byte(cfg.String()), 0o600)
	}
	if err := writeConfig(scaleMinValidity); err != nil {
		return sr, err
	}
	minted := time.Now()
	for i := 0; i < n; i++ {
		p, err := srv.Mint(provider.GenerateRequest{Lifetime: scaleLifetime})
		if err != nil {
			return sr, err
		}
		data, err := (&provider.Record{Pair: p}).Encode()
		if err != nil {
			return sr, err
		}
		if err := os.WriteFile(filepath.Join(pairs, fmt.Sprintf("p%04d.json", i)), data, 0o600); err != nil {
			return sr, err
		}
	}

	var watch *sinkWatch
	if sr.Sinks {
		if watch, err = watchSinks(sinks); err != nil {
			return sr, err
		}
	}
	commits := newCommitLog(nil)
	t0 := time.Now()
	ap, err := startAgent(bin, home, 50*time.Second, commits)
	if err != nil {
		if watch != nil {
			watch.close()
		}
		return sr, fmt.Errorf("%d profiles: %w", n, err)
	}
	defer ap.stop()
	sr.WarmupS = time.Since(t0).Seconds()
	time.Sleep(time.Second) // let start-up garbage settle
	warm, err := readProc(ap.pid())
	if err != nil {
		return sr, err
	}
	warmAt := time.Now()
	sr.RSSWarmKB = warm.RSSKB
	sr.WarmupCPUS = warm.CPU.Seconds()
	if d := time.Until(minted.Add(quietUntil)); d <= 2*time.Second {
		return sr, fmt.Errorf("%d profiles: the agent took %v to warm up, leaving no quiet window before the pairs fall due", n, time.Since(minted).Round(time.Millisecond))
	}
	time.Sleep(time.Until(minted.Add(quietUntil)))
	quiet, err := readProc(ap.pid())
	if err != nil {
		return sr, err
	}
	quietAt := time.Now()
	time.Sleep(time.Until(minted.Add(windowEnd)))
	end, err := readProc(ap.pid())
	if err != nil {
		return sr, err
	}
	endAt := time.Now()
	refreshed := ilog.times()
	st := srv.Stats()
	if watch != nil {
		var lat []float64
		for _, r := range watch.close() {
			if at, ok := commits.committed(r.profile, r.gen); ok && r.at.After(quietAt) {
				lat = append(lat, float64(r.at.Sub(at))/1e6)
			}
		}
		if len(lat) > 0 {
			sort.Float64s(lat)
			q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			sr.SinkN, sr.SinkP50Ms, sr.SinkP99Ms, sr.SinkMaxMs = len(lat), q(0.5), q(0.99), lat[len(lat)-1]
		}
	}
	// Reload: once with nothing changed, once with every profile changed.
	d, err := ap.reload(bin, home)
	if err != nil {
		return sr, fmt.Errorf("%d profiles: %w", n, err)
	}
	sr.ReloadNoopMs = float64(d) / 1e6
	if err := writeConfig(scaleMinValidity + time.Second); err != nil {
		return sr, err
	}
	if d, err = ap.reload(bin, home); err != nil {
		return sr, fmt.Errorf("%d profiles: %w", n, err)
	}
	sr.ReloadAllMs = float64(d) / 1e6
	time.Sleep(time.Second) // the restarted profiles warm in the background
	if after, err := readProc(ap.pid()); err == nil {
		sr.RSSAfterReloadKB = after.RSSKB
	}
	if err := ap.stop(); err != nil {
		return sr, err
	}

	sr.RSSEndKB, sr.RSSEndAnonKB, sr.RSSEndFileKB = end.RSSKB, end.AnonKB, end.FileKB
	sr.WindowS = endAt.Sub(warmAt).Seconds()
	sr.CPUS = (end.CPU - warm.CPU).Seconds()
	idleRate := (quiet.Sched - warm.Sched).Seconds() / quietAt.Sub(warmAt).Seconds()
	sr.IdleCPUPerHourS = idleRate * 3600
	var inWindow []time.Time
	busy := 0
	for _, t := range refreshed {
		if t.Before(warmAt) || t.After(endAt) {
			continue
		}
		inWindow = append(inWindow, t)
		if t.After(quietAt) {
			busy++
		}
	}
	sr.Refreshes = len(inWindow)
	sr.Rejected, sr.Reuses = st.Rejected, st.Reuses
	sr.RejectReasons = ilog.reasons()
	if busy > 0 {
		extra := (end.Sched - quiet.Sched).Seconds() - idleRate*endAt.Sub(quietAt).Seconds()
		sr.CPUPerRefreshMs = math.Max(0, extra) / float64(busy) * 1e3
	}
	// A profile's period at these lifetimes: lifetime minus the window,
	// less half the jitter on average.
	period := scaleLifetime - scaleWindow() - time.Duration(scaleJitter/2*float64(scaleWindow()))
	sr.PeriodS = period.Seconds()
	sr.RefreshesPerHour = float64(n) * float64(time.Hour) / float64(period)
	sr.EvenPerSecond = float64(n) / period.Seconds()
	usable := scaleWindow() - scaleMinValidity
	sr.UsableWindowS = usable.Seconds()
	sr.EvenUsablePerSecond = float64(n) / usable.Seconds()
	lateAfter := minted.Add(scaleLifetime - scaleMinValidity)
	for _, t := range refreshed {
		if t.After(lateAfter) && t.Before(minted.Add(windowEnd)) {
			sr.Late++
		}
	}
	sr.CPUPerHourS = sr.IdleCPUPerHourS + sr.RefreshesPerHour*sr.CPUPerRefreshMs/1e3
	sr.CPUPerHour1hS = sr.IdleCPUPerHourS + float64(n)*4.0/3*sr.CPUPerRefreshMs/1e3

	if len(inWindow) > 0 {
		sort.Slice(inWindow, func(i, j int) bool { return inWindow[i].Before(inWindow[j]) })
		sr.SpreadS = inWindow[len(inWindow)-1].Sub(inWindow[0]).Seconds()
		p := func(q float64) time.Time { return inWindow[min(len(inWindow)-1, int(q*float64(len(inWindow))))] }
		sr.Spread90S = p(0.95).Sub(p(0.05)).Seconds()
		secs := int(math.Ceil(sr.WindowS))
		counts := make([]float64, secs)
		for _, t := range inWindow {
			counts[min(secs-1, int(t.Sub(warmAt).Seconds()))]++
		}
		var sum, sq float64
		for _, c := range counts {
			sum += c
			sr.MaxPerSecond = max(sr.MaxPerSecond, int(c))
		}
		mean := sum / float64(secs)
		for _, c := range counts {
			sq += (c - mean) * (c - mean)
		}
		sr.MeanPerSecond = mean
		if mean > 0 {
			sr.CVPerSecond = math.Sqrt(sq/float64(secs)) / mean
		}
		// The busiest 100ms, in refreshes.
		best := 0
		for i, j := 0, 0; i < len(inWindow); i++ {
			for inWindow[i].Sub(inWindow[j]) > 100*time.Millisecond {
				j++
			}
			best = max(best, i-j+1)
		}
		sr.Busiest100ms = best
	}
	if sr.Refreshes < n {
		sr.Note = fmt.Sprintf("agent with %d profiles: only %d of the %d pairs were refreshed within the window (%.0f s after minting, about %.0f s after they fell due): the agent lagged behind on this machine", n, sr.Refreshes, n, windowEnd.Seconds(), (windowEnd - scaleLifetime + scaleWindow()).Seconds())
	}
	return sr, nil
}
