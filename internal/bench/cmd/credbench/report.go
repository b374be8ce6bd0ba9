package main

import (
	"fmt"
	"strings"
)

// report renders the results as Markdown: each figure, its peer and the
// ratio.
func report(r *Results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# credhelper benchmarks\n\n")
	w("Machine: %s, %d cores; %s; run %s. Reproduce with `make bench` (writes this file, `bench/results.json`, `bench/hotpath.txt` in benchstat format, and `bench/fleet.svg`).\n\n",
		r.CPU, r.Cores, r.GoVersion, r.Date.Format("2006-01-02 15:04 UTC"))

	w("## 1. Hot path: a cached credential\n\n")
	w("Median of the round-robin runs of `testing.Benchmark` in one process, so credhelper and its peers share the machine's noise. Target: at least 10x faster than both peers, 0 allocations.\n\n")
	w("| benchmark | ns/op | allocs/op | peer | peer ns/op | speed-up |\n|---|---:|---:|---|---:|---:|\n")
	for _, h := range r.HotPath {
		if h.Peer != "" {
			continue
		}
		for _, p := range r.HotPath {
			if p.Peer == "" || p.Parallel != h.Parallel {
				continue
			}
			w("| %s | %.2f | %d | %s | %.2f | %.1fx |\n", h.Name, h.NsPerOp, h.AllocsPerOp, p.Peer, p.NsPerOp, p.NsPerOp/h.NsPerOp)
		}
	}
	w("\n")

	w("## 2. Helper latency: one process per credential\n\n")
	w("Wall time of the whole process (start, resolve, print, exit) over repeated runs, all commands round-robin after two warm-up rounds so that the machine's noise falls on every row alike, and the median peak RSS of 5 more runs under `/usr/bin/time -f %%M` (Go starts children with vfork, so wait4's maxrss of a child of credbench would include credbench's own memory). `credhelper get --backend ...` resolves the credential itself (the front executes credhelper-full); `credhelper get --profile P` with an agent running is answered by the front binary from the agent (the runs set `CREDHELPER_FULL=/bin/false`, so a fallback would have failed them). Peer: the aws CLI reading the same moto secret. Targets: through the agent under 5 ms median and at least 50x faster than the aws CLI.\n\n")
	w("| command | runs | p50 ms | p95 ms | max ms | peak RSS MiB | aws CLI p50 ms | speed-up |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	awsCLI := awsCLIMs(r)
	for _, h := range r.Helper {
		peer, ratio := "", ""
		if awsCLI > 0 && !strings.HasPrefix(h.Name, "aws ") {
			peer, ratio = fmt.Sprintf("%.1f", awsCLI), fmt.Sprintf("%.0fx", awsCLI/h.Wall.P50Ms)
		}
		w("| %s | %d | %.2f | %.2f | %.2f | %.1f | %s | %s |\n", h.Name, h.Wall.N, h.Wall.P50Ms, h.Wall.P95Ms, h.Wall.MaxMs, float64(h.PeakRSSKB)/1024, peer, ratio)
	}
	w("\n")

	w("## 3. Plugin boundary\n\n| operation | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n")
	for _, p := range r.Plugin {
		w("| %s | %d | %.3f | %.3f | %.3f |\n", p.Name, p.Latency.N, p.Latency.P50Ms, p.Latency.P99Ms, p.Latency.MaxMs)
	}
	if len(r.Plugin) == 2 && r.Plugin[1].Latency.P50Ms > 0 {
		w("\nThe boundary adds %.3f ms at the median (%.0fx an in-process Load).\n", r.Plugin[0].Latency.P50Ms-r.Plugin[1].Latency.P50Ms, r.Plugin[0].Latency.P50Ms/r.Plugin[1].Latency.P50Ms)
	}
	w("\n")
	fleetReport(&b, r)
	scaleReport(&b, r)
	targets(&b, r)
	if len(r.StepSeconds) > 0 {
		w("## Run\n\n| step | seconds | load average (1 min) at start | at end |\n|---|---:|---:|---:|\n")
		for _, st := range r.StepSeconds {
			w("| %s | %.1f | %.1f | %.1f |\n", st.Step, st.Seconds, st.LoadStart, st.LoadEnd)
		}
		w("| total | %.1f | | |\n\nThe machine has %d cores; a load average far above that means other jobs were competing for them during the run.\n\n", r.TotalSeconds, r.Cores)
	}
	if len(r.Notes) > 0 {
		w("## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

func awsCLIMs(r *Results) float64 {
	for _, h := range r.Helper {
		if strings.HasPrefix(h.Name, "aws ") {
			return h.Wall.P50Ms
		}
	}
	return 0
}

func fleetReport(b *strings.Builder, r *Results) {
	if len(r.Fleet) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f0 := r.Fleet[0]
	w("## 4. Fleet storm: one credential, %d processes x %d goroutines\n\n", f0.Processes, f0.Goroutines)
	w("Worker processes (credbench re-executed, run by `internal/fleet`) share one credential of %.0f-second pairs from the dev issuer (Momento protocol, loopback) until %d generations are committed; every goroutine calls `Credential` every 5 ms and checks what it is served. The dev issuer counts refresh calls, rejections and reuses. Target: exactly 1 issuer refresh call per generation, 0 rejected, 0 reused.\n\n", f0.LifetimeS, f0.TargetGens)
	w("| backend | processes x goroutines | generations | issuer refresh calls | calls per generation | rejected | reuses | caller calls | caller errors | invalid pairs served | generation regressions | forks |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleet {
		w("| %s | %d x %d | %d | %d | %.2f | %d | %d | %d | %d | %d | %d | %d |\n", backendName(f.Backend), f.Processes, f.Goroutines, f.Generations, f.IssuerAttempts, f.CallsPerGeneration, f.Rejected, f.Reuses, f.Calls, f.Errors, f.Invalid, f.Regressions+int64(f.StoreRegressions), f.Forks)
	}
	w("\nLatency callers see. *Refresh in flight*: calls of the %d probe goroutines per process (which timestamp every call) that overlapped a refresh anywhere in the fleet, from the holder's claim to its commit. *No refresh*: every other probe call. Peer: one refresh by a single engine alone on the same backend and issuer (forced, 20 times, median) — what a caller would wait for if callers waited for the refresh.\n\n", f0.Probes)
	w("| backend | refresh in flight: n | p50 µs | p99 µs | max µs | no refresh: p50 µs | p99 µs | max µs | single uncontended refresh p50 ms | single refresh p50 / in-flight p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleet {
		ratio := ""
		if f.InFlight.P99Us > 0 {
			ratio = fmtRatio(f.SingleRefresh.P50Ms * 1e3 / f.InFlight.P99Us)
		}
		w("| %s | %d | %.2f | %.0f | %.0f | %.2f | %.1f | %.0f | %.2f | %s |\n", backendName(f.Backend), f.InFlight.N, f.InFlight.P50Us, f.InFlight.P99Us, f.InFlight.MaxUs, f.Quiet.P50Us, f.Quiet.P99Us, f.Quiet.MaxUs, f.SingleRefresh.P50Ms, ratio)
	}
	w("\nAll checked goroutines (`internal/fleet` histograms, 6%% bucket precision): calls that returned a generation new to their process, and all others; and how long refreshes were in flight in the storm (claim to commit).\n\n")
	w("| backend | new generation: n | p50 µs | p99 µs | max µs | cached: n | p50 µs | p99 µs | max µs | refresh in flight p50 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleet {
		w("| %s | %d | %.2f | %.0f | %.0f | %d | %.2f | %.1f | %.0f | %.1f | %.1f |\n", backendName(f.Backend), f.NewGeneration.N, f.NewGeneration.P50Us, f.NewGeneration.P99Us, f.NewGeneration.MaxUs, f.Cached.N, f.Cached.P50Us, f.Cached.P99Us, f.Cached.MaxUs, f.RefreshWindow.P50Ms, f.RefreshWindow.MaxMs)
	}
	for _, f := range r.Fleet {
		for _, k := range f.ErrorKinds {
			w("\n- %s, caller errors: %s", backendName(f.Backend), k)
		}
		for _, k := range f.InvalidSamples {
			w("\n- %s, invalid pair served: %s", backendName(f.Backend), k)
		}
		for _, k := range f.RejectReasons {
			w("\n- %s, issuer refused: %s", backendName(f.Backend), k)
		}
	}
	w("\n")
	w("\n![fleet storm timeline](fleet.svg)\n\n`bench/fleet.svg`: per backend, generations committed and issuer refresh calls over time (they coincide when every generation costs one call), refreshes in flight shaded, and the probes' latency per 100 ms (p50, p99 and max, log scale). A stretch without points is time in which no probe in any process completed a call: the whole machine stalled.\n\n")
}

func backendName(b string) string {
	if b == "awssm" {
		return "AWS Secrets Manager (moto)"
	}
	return "file"
}

func scaleReport(b *strings.Builder, r *Results) {
	if len(r.Scale) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	s0 := r.Scale[0]
	w("## 5. Agent scale: 1 to 1,000 profiles\n\n")
	w("One `credhelper agent` process per profile count (file backend, dev issuer in the harness). Every pair has the same %.0f-second lifetime and all are minted in the same instant, the worst case for a thundering herd: only each engine's own jitter (up to half the refresh window, here %.2f s) spreads the refreshes. Memory is VmRSS after warm-up and at the end; CPU is utime+stime from /proc/PID/stat over the window; its split into the idle part before the pairs fall due and the refresh round after it uses the threads' run time from /proc/PID/task/*/schedstat (nanoseconds; utime+stime counts 10 ms ticks). CPU per hour is extrapolated: idle CPU per hour plus refreshes per hour times CPU per refresh, at this run's lifetimes and at one-hour lifetimes (refreshed every 45 minutes, the default window being their last 15 minutes).\n\n", s0.LifetimeS, s0.JitterSpanS)
	w("| profiles | warm-up s | warm-up CPU s | RSS after warm-up MiB | RSS at end MiB | RSS per profile KiB | CPU in window s (utime+stime) | idle CPU s/hour | CPU ms per refresh | refreshes/hour at %.0f s lifetimes | CPU s/hour at %.0f s lifetimes | CPU s/hour at 1 h lifetimes |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", s0.LifetimeS, s0.LifetimeS)
	base := r.Scale[0].RSSEndKB
	for _, s := range r.Scale {
		per := ""
		if s.Profiles > 1 {
			per = fmt.Sprintf("%.1f", float64(s.RSSEndKB-base)/float64(s.Profiles-1))
		}
		w("| %d | %.2f | %.2f | %.1f | %.1f | %s | %.2f | %.2f | %.2f | %.0f | %.1f | %.2f |\n", s.Profiles, s.WarmupS, s.WarmupCPUS, float64(s.RSSWarmKB)/1024, float64(s.RSSEndKB)/1024, per, s.CPUS, s.IdleCPUPerHourS, s.CPUPerRefreshMs, s.RefreshesPerHour, s.CPUPerHourS, s.CPUPerHour1hS)
	}
	w("\nWhen the refreshes land, from the dev issuer's log over the window of about %.0f s, which holds the first round of refreshes. *Even spread*: the rate if each profile's refreshes were spread evenly over its period (N / %.1f s).\n\n", s0.WindowS, s0.PeriodS)
	w("| profiles | refreshes | rejected | reuses | spread first-last s | spread p5-p95 s | busiest second | mean per second over window | even spread per second | busiest / even | even over usable window per second | busiest / even over usable window | refreshes below min_validity | busiest 100 ms | CV of per-second counts |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Scale {
		if s.Profiles == 1 {
			w("| 1 | %d | %d | %d | | | %d | %.2f | %.3f | | %.3f | | %d | | |\n", s.Refreshes, s.Rejected, s.Reuses, s.MaxPerSecond, s.MeanPerSecond, s.EvenPerSecond, s.EvenUsablePerSecond, s.Late)
			continue
		}
		w("| %d | %d | %d | %d | %.2f | %.2f | %d | %.1f | %.1f | %.1fx | %.1f | %.1fx | %d | %d | %.1f |\n", s.Profiles, s.Refreshes, s.Rejected, s.Reuses, s.SpreadS, s.Spread90S, s.MaxPerSecond, s.MeanPerSecond, s.EvenPerSecond, float64(s.MaxPerSecond)/s.EvenPerSecond,
			s.EvenUsablePerSecond, float64(s.MaxPerSecond)/s.EvenUsablePerSecond, s.Late, s.Busiest100ms, s.CVPerSecond)
	}
	w("\n*Usable window*: the refresh window without jitter less `min_validity` (%.1f s here), the span over which a fleet's refreshes can be spread without a pair dropping below `min_validity`; *refreshes below min_validity*: first-round refreshes the issuer saw after the pair had less than `min_validity` left.\n\n", s0.UsableWindowS)
	w("Sinks and reload. The %d-profile agent also writes a JSON sink per profile: *sink write* is the time from a generation's commit (the agent's JSON log) to its sink file renamed into place (inotify in the harness), over the round of refreshes. *Reload* is the wall time of `credhelper agent reload` (process start, SIGHUP, and polling the agent every 20 ms until it reports the reload done), with nothing changed and with every profile changed (each engine closed and a new one warmed from the store).\n\n", sinkProfiles)
	w("| profiles | sink writes measured | sink write p50 ms | p99 ms | max ms | reload, nothing changed ms | reload, every profile changed ms | RSS after that reload MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Scale {
		sink := "| | | |"
		if s.Sinks {
			sink = fmt.Sprintf("%d | %.2f | %.2f | %.2f |", s.SinkN, s.SinkP50Ms, s.SinkP99Ms, s.SinkMaxMs)
		} else {
			sink = "(no sinks) | | | |"
		}
		w("| %d | %s %.0f | %.0f | %.1f |\n", s.Profiles, sink, s.ReloadNoopMs, s.ReloadAllMs, float64(s.RSSAfterReloadKB)/1024)
	}
	w("\n")
}

// targets states each target of the benchmark issue, what this run
// measured and whether it was met.
func targets(b *strings.Builder, r *Results) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Targets\n\n| target | measured | met |\n|---|---|---|\n")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	// Hot path: at least 10x both peers, serial and parallel, 0 allocs.
	minRatio, allocs := 0.0, int64(0)
	for _, h := range r.HotPath {
		if h.Peer != "" {
			continue
		}
		allocs = max(allocs, h.AllocsPerOp)
		for _, p := range r.HotPath {
			if p.Peer != "" && p.Parallel == h.Parallel && h.NsPerOp > 0 {
				if ratio := p.NsPerOp / h.NsPerOp; minRatio == 0 || ratio < minRatio {
					minRatio = ratio
				}
			}
		}
	}
	if minRatio > 0 {
		w("| hot path at least 10x faster than both peers, 0 allocs | slowest ratio %.1fx, %d allocs/op | %s |\n", minRatio, allocs, yes(minRatio >= 10 && allocs == 0))
	}
	// Through the agent: under 5 ms median, at least 50x the aws CLI.
	awsCLI := awsCLIMs(r)
	worst := 0.0
	for _, h := range r.Helper {
		if strings.Contains(h.Name, "through the agent") {
			worst = max(worst, h.Wall.P50Ms)
		}
	}
	if worst > 0 {
		w("| `credhelper get` through the agent under 5 ms median | slowest profile %.2f ms | %s |\n", worst, yes(worst < 5))
		if awsCLI > 0 {
			w("| through the agent at least 50x faster than the aws CLI | %.0fx (aws CLI %.0f ms) | %s |\n", awsCLI/worst, awsCLI, yes(awsCLI/worst >= 50))
		}
	}
	for _, f := range r.Fleet {
		ok := f.CallsPerGeneration == 1 && f.IssuerAttempts == f.Generations && f.Rejected == 0 && f.Reuses == 0 && f.Generations >= f.TargetGens
		w("| fleet storm on %s: %d generations, 1 issuer call each, 0 rejected, 0 reused | %d generations, %d issuer calls (%.2f each), %d rejected, %d reused; %d caller errors, %d invalid pairs served | %s |\n",
			backendName(f.Backend), f.TargetGens, f.Generations, f.IssuerAttempts, f.CallsPerGeneration, f.Rejected, f.Reuses, f.Errors, f.Invalid, yes(ok && f.Errors == 0 && f.Invalid == 0))
	}
	for _, s := range r.Scale {
		if s.Profiles < 100 || s.EvenUsablePerSecond == 0 {
			continue
		}
		ratio := float64(s.MaxPerSecond) / s.EvenUsablePerSecond
		w("| no thundering herd, %d profiles minted together: busiest second at most 2x an even spread over the usable window, no refresh below min_validity | busiest second %d refreshes, %.1fx an even spread over the %.1f s usable window; %d below min_validity; round spread over %.1f s (p5-p95) | %s |\n",
			s.Profiles, s.MaxPerSecond, ratio, s.UsableWindowS, s.Late, s.Spread90S, missed(ratio <= 2 && s.Late == 0, fmt.Sprintf("%.1fx over 2x", ratio-2)))
	}
	for _, s := range r.Scale {
		if s.Profiles != 1000 {
			continue
		}
		rss := float64(max(s.RSSWarmKB, s.RSSEndKB)) / 1024
		w("| 1,000 profiles in at most 32 MiB resident | %.1f MiB after warm-up, %.1f MiB after a round of refreshes (%.1f MiB allocated, %.1f MiB of the binary mapped in) | %s |\n",
			float64(s.RSSWarmKB)/1024, float64(s.RSSEndKB)/1024, float64(s.RSSEndAnonKB)/1024, float64(s.RSSEndFileKB)/1024, missed(rss <= 32, fmt.Sprintf("%.1f MiB over", rss-32)))
		w("| 1,000 profiles warm in at most 1 s | %.2f s from start to the socket answering | %s |\n",
			s.WarmupS, missed(s.WarmupS <= 1, fmt.Sprintf("%.2f s over", s.WarmupS-1)))
		w("| idle CPU at most 2 CPU-seconds an hour at 1,000 profiles | %.2f CPU-s/hour | %s |\n",
			s.IdleCPUPerHourS, missed(s.IdleCPUPerHourS <= 2, fmt.Sprintf("%.2f CPU-s/hour over", s.IdleCPUPerHourS-2)))
	}
	w("\n")
}

// missed is "yes", or "**no**" with by how much.
func missed(ok bool, by string) string {
	if ok {
		return "yes"
	}
	return "**no**, " + by
}

// fmtRatio prints a ratio with two significant digits below 10.
func fmtRatio(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.2gx", x)
	}
	return fmt.Sprintf("%.0fx", x)
}
