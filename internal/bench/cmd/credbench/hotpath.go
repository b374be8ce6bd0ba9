package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/credhelper/credhelper/internal/bench"
)

// HotPathResult is one cached-credential benchmark: the median of several
// testing.Benchmark runs.
type HotPathResult struct {
	Name        string    `json:"name"`
	Peer        string    `json:"peer,omitempty"`
	Parallel    bool      `json:"parallel"`
	NsPerOp     float64   `json:"ns_per_op"`
	AllocsPerOp int64     `json:"allocs_per_op"`
	Runs        []float64 `json:"runs_ns_per_op"`
}

// hotPath runs every hot-path benchmark round-robin, so that machine noise
// hits credhelper and its peers alike, and keeps each one's median.
func hotPath(r *Results, out string, quick bool) error {
	count := 7
	if quick {
		count = 2
	}
	hs := bench.HotPaths()
	res := make([]HotPathResult, len(hs))
	var lines []string
	for round := 0; round < count; round++ {
		for i, h := range hs {
			br := testing.Benchmark(h.Fn)
			if br.N == 0 {
				return fmt.Errorf("%s failed", h.Name)
			}
			res[i].Name, res[i].Peer, res[i].Parallel = h.Name, h.Peer, h.Parallel
			res[i].AllocsPerOp = br.AllocsPerOp()
			ns := float64(br.T.Nanoseconds()) / float64(br.N)
			res[i].Runs = append(res[i].Runs, ns)
			// benchstat-compatible lines
			lines = append(lines, fmt.Sprintf("BenchmarkHotPath/%s-%d\t%d\t%.3f ns/op\t%d B/op\t%d allocs/op", h.Name, procs(), br.N, ns, br.AllocedBytesPerOp(), br.AllocsPerOp()))
		}
	}
	for i := range res {
		s := append([]float64(nil), res[i].Runs...)
		sort.Float64s(s)
		res[i].NsPerOp = s[len(s)/2]
	}
	r.HotPath = res
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "hotpath.txt"), []byte(joinLines(lines)), 0o644)
}

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}
