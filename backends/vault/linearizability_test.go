package vault_test

import (
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// TestLinearizability checks histories of concurrent Loads and swaps of
// one KV v2 secret from several processes (see
// backendtest.RunLinearizability).
func TestLinearizability(t *testing.T) {
	var mount string
	if !backendtest.IsChild() {
		// The parent owns the mount; children only use the key.
		mount = mountKV(t, "2")
	}
	backendtest.RunLinearizability(t, backendtest.Config{
		New: func(t testing.TB) provider.Backend { return newBackend(t) },
		Key: func(t testing.TB) string { return keyIn(t, mount) },
	}, func(o *backendtest.LinearizabilityOptions) {
		o.Processes, o.Goroutines, o.Ops = 3, 4, 40
		// A tenth of the operations get a deadline short enough to
		// cut some off part-way: their outcome is unknown.
		o.CancelRatio, o.CancelWithin = 0.1, 30*time.Millisecond
	})
}
