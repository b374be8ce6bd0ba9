package file_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
)

// TestLinearizability checks histories of concurrent Loads and swaps of
// one file from several processes (see backendtest.RunLinearizability).
func TestLinearizability(t *testing.T) {
	dir := t.TempDir()
	backendtest.RunLinearizability(t, backendtest.Config{
		New: newBackend,
		Key: func(t testing.TB) string { return filepath.Join(dir, "cred.json") },
	}, func(o *backendtest.LinearizabilityOptions) {
		o.Processes, o.Goroutines, o.Ops = 4, 4, 100
		// A tenth of the operations get a deadline short enough to
		// cut some off part-way: their outcome is unknown.
		o.CancelRatio, o.CancelWithin = 0.1, 20*time.Millisecond
	})
}
