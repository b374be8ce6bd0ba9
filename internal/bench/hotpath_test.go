package bench

import "testing"

// BenchmarkHotPath runs every hot-path benchmark side by side; compare with
// benchstat across runs.
func BenchmarkHotPath(b *testing.B) {
	for _, h := range HotPaths() {
		b.Run(h.Name, h.Fn)
	}
}

// TestEngineHotPathAllocationFree holds the engine's cached path to zero
// allocations (the performance target the report also states).
func TestEngineHotPathAllocationFree(t *testing.T) {
	r := testing.Benchmark(HotPaths()[0].Fn)
	if r.AllocsPerOp() != 0 {
		t.Fatalf("cached Credential allocates %d times per call", r.AllocsPerOp())
	}
}
