// Package bench holds credhelper's performance measurements and the peers
// they are compared with, in one place so that a single run measures both
// sides on the same machine at the same time.
//
// The Go benchmarks here run with `go test -bench . ./bench/`; the full
// report (hot path, helper-process latency, plugin boundary, fleet storm,
// agent scale) is written by `make bench`, which runs cmd/credbench.
package bench
