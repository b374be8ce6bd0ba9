//go:build engine_oob_fix

package refresh_test

import "testing"

// TestFleetOutOfBandWriteBeforeCommit has another client (a person with
// the aws CLI, `vault kv put`, Momento's rotation tooling) store a fresh
// pair without a generation after the engine claimed and refreshed the
// stored one and before it commits. The commit's CompareAndSwap detects the
// conflict, but the engine then sees generation 0 below its own next
// generation, takes the record for a lease takeover and commits its pair
// over the other client's: the out-of-band pair is lost without a word.
// Expected: adopt the out-of-band pair and report the engine's own pair as
// orphaned, as for a newer generation.
//
// It fails on the engine as of this commit and is kept behind a build tag
// so that `make test` stays green; remove the tag with the fix:
//
//	scripts/testenv.sh go test -race -tags engine_oob_fix -run TestFleetOutOfBandWriteBeforeCommit ./refresh/
func TestFleetOutOfBandWriteBeforeCommit(t *testing.T) {
	for _, backend := range []string{"file", "awssm", "vault"} {
		t.Run(backend, func(t *testing.T) { outOfBand(t, backend, 2, 0) })
	}
}
