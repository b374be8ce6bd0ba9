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
	w("Wall time of the whole process (start, resolve, print, exit) over repeated runs after two warm-ups, and the median peak RSS (wait4 rusage).\n\n")
	w("| command | runs | p50 ms | p95 ms | max ms | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|\n")
	var awsCLI float64
	for _, h := range r.Helper {
		if strings.HasPrefix(h.Name, "aws ") {
			awsCLI = h.Wall.P50Ms
		}
	}
	for _, h := range r.Helper {
		w("| %s | %d | %.2f | %.2f | %.2f | %.1f |\n", h.Name, h.Wall.N, h.Wall.P50Ms, h.Wall.P95Ms, h.Wall.MaxMs, float64(h.PeakRSSKB)/1024)
	}
	if awsCLI > 0 {
		w("\nRatios against the aws CLI on the same secret (median):\n\n")
		for _, h := range r.Helper {
			if !strings.HasPrefix(h.Name, "aws ") {
				w("- %s: %.0fx faster\n", h.Name, awsCLI/h.Wall.P50Ms)
			}
		}
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
	if len(r.Notes) > 0 {
		w("## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

func fleetReport(b *strings.Builder, r *Results) {}

func scaleReport(b *strings.Builder, r *Results) {}
