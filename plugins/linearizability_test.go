package plugins

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// TestLinearizability checks histories of concurrent Loads and swaps of
// one file through examples/fileplugin, each child process running its own
// plugin (see backendtest.RunLinearizability).
func TestLinearizability(t *testing.T) {
	backendtest.RunLinearizability(t, backendtest.Config{
		New: func(t testing.TB) provider.Backend {
			return backendOf(t, open(t, "fileplugin", nil))
		},
		Key: func(t testing.TB) string { return filepath.Join(t.TempDir(), "cred.json") },
	}, func(o *backendtest.LinearizabilityOptions) {
		o.Processes, o.Goroutines, o.Ops = 3, 4, 50
		// A tenth of the operations get a deadline short enough to
		// cut some off part-way: their outcome is unknown.
		o.CancelRatio, o.CancelWithin = 0.1, 30*time.Millisecond
	})
}
