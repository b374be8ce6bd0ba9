package awssm_test

import (
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// TestLinearizability checks histories of concurrent Loads and swaps of
// one secret in moto from several processes (see
// backendtest.RunLinearizability).
func TestLinearizability(t *testing.T) {
	backendtest.RunLinearizability(t, backendtest.Config{
		New: func(t testing.TB) provider.Backend { return newBackend(t) },
		Key: secretName,
	}, func(o *backendtest.LinearizabilityOptions) {
		o.Processes, o.Goroutines, o.Ops = 3, 4, 30
		// A tenth of the operations get a deadline short enough to
		// cut some off part-way: their outcome is unknown.
		o.CancelRatio, o.CancelWithin = 0.1, 300*time.Millisecond
	})
}
