package plugins

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// benchmarkLoad measures Load of one stored record and reports the median
// and 99th percentile of single calls besides the mean.
func benchmarkLoad(b *testing.B, be provider.Backend) {
	ctx := context.Background()
	key := filepath.Join(b.TempDir(), "cred.json")
	if _, err := be.CompareAndSwap(ctx, key, "", backendtest.Value("bench")); err != nil {
		b.Fatalf("CompareAndSwap: %v", err)
	}
	if _, err := be.Load(ctx, key); err != nil { // start the plugin, warm up
		b.Fatalf("Load: %v", err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := be.Load(ctx, key); err != nil {
			b.Fatalf("Load: %v", err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkLoadPlugin is one Load through the plugin boundary: the file
// backend served by examples/fileplugin.
func BenchmarkLoadPlugin(b *testing.B) {
	benchmarkLoad(b, backendOf(b, open(b, "fileplugin", nil)))
}

// BenchmarkLoadInProcess is the same Load on the file backend in process.
func BenchmarkLoadInProcess(b *testing.B) {
	be, err := file.New()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkLoad(b, be)
}
