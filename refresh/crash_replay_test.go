package refresh_test

import (
	"testing"

	"github.com/credhelper/credhelper/internal/fleet"
)

// TestCrashAfterJournalNoRestart kills the refreshing instance after it
// journaled the new pair, and does not restart it: only the other
// instances on the same host, sharing the journal directory, carry on.
// Expected: they recover the journaled pair (the successor of the spent
// refresh token is on this host's disk) with no extra issuer call.
//
// A regression test: engines once replayed journals
// only once, before their first refresh, so the survivors (started before
// the crash) wait out the dead instance's lease, claim, and present the
// spent refresh token again, which the issuer rejected (revoking the
// family), breaking the lineage. Survivors now replay a dead neighbour's
// journal as soon as its claim stands in their way.
func TestCrashAfterJournalNoRestart(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "journaled", noRestart: true})
	r.checkClean(t)
	if n := r.total.Events["journal_replayed"]; n != 1 {
		t.Errorf("%d journal replays, want 1", n)
	}
}
