package refresh_test

import "testing"

// TestFleetOutOfBandWriteBeforeCommit has another client (a person with
// the aws CLI, `vault kv put`, Momento's rotation tooling) store a fresh
// pair without a generation after the engine claimed and refreshed the
// stored one and before it commits. The commit's CompareAndSwap detects the
// conflict; the engine once saw generation 0 below its own next
// generation, took the record for a lease takeover and committed its pair
// over the other client's, losing the out-of-band pair without a word.
// Expected: adopt the out-of-band pair and report the engine's own pair as
// orphaned, as for a newer generation.
func TestFleetOutOfBandWriteBeforeCommit(t *testing.T) {
	for _, backend := range []string{"file", "awssm", "vault"} {
		t.Run(backend, func(t *testing.T) { outOfBand(t, backend, 2, 0) })
	}
}
