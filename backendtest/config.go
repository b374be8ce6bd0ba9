package backendtest

import (
	"testing"

	"github.com/credhelper/credhelper/provider"
)

// Config describes the backend under test.
type Config struct {
	// New returns a backend attached to the store under test. It is called
	// in the test process and in every child process of the multi-process
	// race, so it must reach the same store from either.
	New func(t testing.TB) provider.Backend
	// Key returns a key no other subtest uses. It is called in the test
	// process only; child processes receive the key it returned.
	Key func(t testing.TB) string
	// ReadOnly marks a backend whose CompareAndSwap always fails with
	// provider.ErrReadOnly; the suite then needs Seed.
	ReadOnly bool
	// Seed stores value under key out of band. Required when ReadOnly.
	Seed func(t testing.TB, key string, value []byte)
	// Processes and Goroutines size the concurrent races; defaults 4 and 16.
	Processes, Goroutines int
	// MaxValue is the largest value the backend must store; default
	// provider.MaxRecordSize.
	MaxValue int
	// SkipMultiProcess disables the multi-process race; only for backends
	// whose store lives in the test process's memory.
	SkipMultiProcess bool
}

// Run runs the conformance suite as subtests of t. In a child process of
// the multi-process race it performs the child's single operation instead.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if runChild(t, cfg) {
		return
	}
	cfg.defaults(t)
	run(t, cfg)
}
