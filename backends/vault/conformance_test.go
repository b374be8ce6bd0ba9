package vault_test

import (
	"testing"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

func TestConformance(t *testing.T) {
	t.Parallel() // its multi-process race waits; let the AppRole test run meanwhile
	var mount string
	if !backendtest.IsChild() {
		// Child processes of the multi-process race only swap an existing
		// key; the parent owns the mount.
		mount = mountKV(t, "2")
	}
	backendtest.Run(t, backendtest.Config{
		// A child builds its backend from the same environment.
		New: func(t testing.TB) provider.Backend { return newBackend(t) },
		Key: func(t testing.TB) string { return keyIn(t, mount) },
	})
}
