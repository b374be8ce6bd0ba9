// Command credbench measures credhelper against the tools users would use
// instead and writes internal/bench/report.md, internal/bench/results.json and the fleet
// chart. `make bench` runs it inside scripts/testenv.sh, which provides
// moto_server.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/internal/fleet"
)

// Results is everything one run measured; results.json holds it.
type Results struct {
	Date      time.Time        `json:"date"`
	GoVersion string           `json:"go_version"`
	CPU       string           `json:"cpu"`
	Cores     int              `json:"cores"`
	HotPath   []HotPathResult  `json:"hot_path"`
	Helper    []ProcessResult  `json:"helper_latency"`
	Plugin    []BoundaryResult `json:"plugin_boundary"`
	Fleet     []FleetResult    `json:"fleet_storm,omitempty"`
	Scale     []ScaleResult    `json:"agent_scale,omitempty"`
	Notes     []string         `json:"notes,omitempty"`
	// StepSeconds and TotalSeconds are how long each step and the whole
	// run took (the build before it excluded).
	StepSeconds  []StepTime `json:"step_seconds"`
	TotalSeconds float64    `json:"total_seconds"`
}

// StepTime is one step's wall time and the machine's one-minute load
// average when it began and ended (other jobs may share the machine).
type StepTime struct {
	Step      string  `json:"step"`
	Seconds   float64 `json:"seconds"`
	LoadStart float64 `json:"load1_start"`
	LoadEnd   float64 `json:"load1_end"`
}

func main() {
	// A fleet worker: internal/fleet re-executes this binary (with
	// -fleet-worker, for ps) and hands it its share of the storm in the
	// environment.
	if fleet.IsWorker() {
		fleet.Child(fleetWorker)
		return
	}
	out := flag.String("out", "internal/bench", "directory for report.md, results.json and charts")
	bin := flag.String("bin", "bin/credhelper", "the credhelper binary to measure")
	runs := flag.Int("runs", 30, "process runs per helper-latency row")
	quick := flag.Bool("quick", false, "fewer repetitions (a smoke test of the harness)")
	only := flag.String("only", "", "comma-separated steps to run (hot,helper,plugin,fleet,scale); default all")
	flag.Parse()
	if err := run(*out, *bin, *runs, *quick, *only); err != nil {
		fmt.Fprintln(os.Stderr, "credbench:", err)
		os.Exit(1)
	}
}

func run(out, bin string, runs int, quick bool, only string) error {
	ctx := context.Background()
	absBin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(absBin); err != nil {
		return fmt.Errorf("%s: build it first with make build", bin)
	}
	r := &Results{Date: time.Now().UTC(), GoVersion: runtime.Version(), CPU: cpuModel(), Cores: runtime.NumCPU()}
	steps := []struct {
		id, name string
		fn       func() error
	}{
		{"hot", "hot path", func() error { return hotPath(r, out, quick) }},
		{"helper", "helper latency", func() error { return helperLatency(ctx, r, absBin, runs) }},
		{"plugin", "plugin boundary", func() error { return pluginBoundary(ctx, r, quick) }},
		{"fleet", "fleet storm", func() error { return fleetStorm(ctx, r, out, quick) }},
		{"scale", "agent scale", func() error { return agentScale(ctx, r, absBin, quick) }},
	}
	total := time.Now()
	for _, s := range steps {
		if only != "" && !slices.Contains(strings.Split(only, ","), s.id) {
			continue
		}
		start, load := time.Now(), loadAvg()
		fmt.Fprintf(os.Stderr, "credbench: %s...\n", s.name)
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		d := time.Since(start)
		r.StepSeconds = append(r.StepSeconds, StepTime{Step: s.name, Seconds: math.Round(d.Seconds()*10) / 10, LoadStart: load, LoadEnd: loadAvg()})
		fmt.Fprintf(os.Stderr, "credbench: %s done in %v\n", s.name, d.Round(time.Millisecond))
	}
	r.TotalSeconds = math.Round(time.Since(total).Seconds()*10) / 10
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "report.md"), []byte(report(r)), 0o644)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the one-minute load average, 0 if unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
