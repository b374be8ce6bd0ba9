package refresh_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// crashTiming: 8-second pairs (refreshed in their last 4s) and a 4-second
// lease, so that after a crash right at the start of a pair's life the
// lease expires (plus skew) before the pair enters its refresh window ends
// and well before it expires: the survivors' takeover happens while the
// pair is still valid, as Momento requires.
var crashTiming = timing{
	Lifetime:      8 * time.Second,
	Fraction:      0.5,
	Floor:         2 * time.Second,
	MinValidity:   500 * time.Millisecond,
	Lease:         4 * time.Second,
	IssuerTimeout: 1500 * time.Millisecond,
	Skew:          250 * time.Millisecond,
	Retry:         100 * time.Millisecond,
	MaxRetry:      time.Second,
}

// crashCase is one failpoint at which an instance is SIGKILLed.
type crashCase struct {
	step string
	// failpointDelay lets the step proceed and kills the process that
	// long after it (for "issuing": with the request in flight).
	failpointDelay time.Duration
	// refreshDelay keeps refreshes in flight at the dev issuer.
	refreshDelay time.Duration
	// lost: the step is after the issuer spent the refresh token and
	// before the new pair reached the journal, so the lineage is lost.
	lost bool
	// noRestart leaves the dead instance dead: only the other instances,
	// on the same host and journal directory, carry on.
	noRestart bool
}

// runCrash SIGKILLs one instance at c.step of a forced refresh, while two
// other instances (2 processes x 4 goroutines) serve the same credential,
// then restarts it (a new process, same host, same journal directory) and
// lets the fleet run on. The dead instance's refresh is of generation 0.
//
// Clean outcome (every step but the lost ones): the fleet reaches
// generation 2 with exactly one issuer refresh per generation and none
// rejected. Lost outcome: the one allowed extra attempt (I1), by whichever
// survivor takes the expired lease, is rejected; the lineage is marked
// broken and callers get provider.ErrLineageBroken, never a bad pair.
func runCrash(t *testing.T, c crashCase) *crashRun {
	t.Parallel()
	e := newFleetEnv(t, "file", "momento", crashTiming, func(o *dev.Options) { o.RefreshDelay = c.refreshDelay })
	poll := fleet.Poll(e.backend, e.key, 100*time.Millisecond)
	ctx := ctxFor(t, 2*time.Minute)
	const target = 2
	started := time.Now()

	othersSpec := e.spec(2, 4, target, 20*time.Second)
	othersSpec.StopOnLineageBroken = c.lost
	others, err := fleet.Start(ctx, othersSpec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(others.Kill)

	crashSpec := e.spec(1, 1, 0, 20*time.Second)
	crashSpec.Params["failpoint"] = c.step
	crashSpec.Params["force"] = "1"
	if c.failpointDelay > 0 {
		crashSpec.Params["failpointDelay"] = c.failpointDelay.String()
	}
	crash, err := fleet.Start(ctx, crashSpec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(crash.Kill)
	select {
	case <-crash.Procs[0].Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the crashing instance did not die at %q within 30s", c.step)
	}
	crashRes, _ := crash.Wait(true)
	if p := crashRes.Procs[0]; p.Signal != syscall.SIGKILL || p.Report != nil {
		t.Fatalf("the crashing instance was not SIGKILLed at %q: signal %v, report %+v", c.step, p.Signal, p.Report)
	}
	run := &crashRun{crashedAt: time.Since(started)}
	run.afterCrash, _ = e.record()
	run.journal = e.journalEntries()
	t.Logf("killed at %q %.2fs after start; stored generation %d, lease %+v; journal entries %d",
		c.step, run.crashedAt.Seconds(), run.afterCrash.Pair.Generation, run.afterCrash.Lease, len(run.journal))
	if len(run.journal) == 1 {
		run.journalGen, run.journalFP = decodeJournal(t, run.journal[0])
	}

	restartSpec := e.spec(1, 4, target, 20*time.Second)
	restartSpec.StopOnLineageBroken = c.lost
	r2, err2 := &fleet.Result{}, error(nil)
	if !c.noRestart {
		restarted, err := fleet.Start(ctx, restartSpec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(restarted.Kill)
		r2, err2 = restarted.Wait(false)
	}
	r1, err1 := others.Wait(false)
	store, regress, _ := poll.Stop()
	if err1 != nil || err2 != nil {
		t.Fatalf("fleet: others: %v; restarted: %v", err1, err2)
	}
	run.total = r1.Total
	run.total.Merge(&r2.Total)
	run.restarted = r2.Total
	run.others = r1.Total
	run.regress = regress
	logTimeline(t, started, store, &run.total)
	run.e = e
	return run
}

type crashRun struct {
	e          *fleetEnv
	crashedAt  time.Duration
	afterCrash *provider.Record
	journal    []string
	journalGen uint64
	journalFP  string
	total      fleet.Report
	others     fleet.Report
	restarted  fleet.Report
	regress    []string
}

// checkLost asserts the lost-lineage outcome: the dead instance's refresh
// was processed by the issuer (1 refresh) but its pair never reached the
// journal or the store; exactly one more attempt was made, after the lease
// expired, and was rejected (the dev issuer, detecting reuse, revoked the
// family); the record is marked broken at generation 0 and every survivor
// ends with provider.ErrLineageBroken. Nothing invalid was served.
func (r *crashRun) checkLost(t *testing.T) {
	t.Helper()
	if r.afterCrash.Lease == nil || r.afterCrash.Pair.Generation != 0 {
		t.Errorf("after the crash: generation %d, lease %+v; want generation 0 under the dead instance's lease", r.afterCrash.Pair.Generation, r.afterCrash.Lease)
	}
	if len(r.journal) != 0 {
		t.Errorf("journal entries after a crash before journaling: %v", r.journal)
	}
	r.e.check(&r.total, r.regress, want{refreshes: 1, attempts: 2, rejected: 1, reuses: 1, revoked: 1, generation: 0, broken: true, maxErrors: -1})
	for name, rep := range map[string]*fleet.Report{"other instances": &r.others, "restarted instance": &r.restarted} {
		if rep.LineageBroken == 0 {
			t.Errorf("%s never got ErrLineageBroken (errors %v)", name, rep.ErrorKinds)
		}
	}
	if r.total.MaxGeneration != 0 {
		t.Errorf("generation %d served after the lineage was lost", r.total.MaxGeneration)
	}
	if n := r.total.Events["lineage_broken"]; n != 1 {
		t.Errorf("%d lineage_broken events, want 1 (the one rejected attempt)", n)
	}
}

// checkClean asserts a clean recovery to generation 2: one issuer refresh
// per generation, none rejected.
func (r *crashRun) checkClean(t *testing.T) {
	t.Helper()
	r.e.check(&r.total, r.regress, want{refreshes: 2, attempts: 2, generation: 2, maxErrors: 0})
}

// TestCrashAfterClaim kills the refreshing instance right after its claim
// (the lease is stored, the issuer not yet called). Expected: no lineage
// loss; the survivors wait until the lease expired plus the clock-skew
// allowance, then exactly one of them refreshes generation 0; the chain
// continues to generation 2 with exactly 2 issuer calls.
func TestCrashAfterClaim(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "claimed"})
	if r.afterCrash.Lease == nil || r.afterCrash.Pair.Generation != 0 {
		t.Fatalf("after the crash: generation %d, lease %+v; want generation 0 under the dead instance's lease", r.afterCrash.Pair.Generation, r.afterCrash.Lease)
	}
	r.checkClean(t)
	takeover := r.afterCrash.Lease.Expires.Add(crashTiming.Skew)
	if g1, ok := r.total.FirstServed(1); !ok || g1.Before(takeover) {
		t.Errorf("generation 1 first served at %s, before the dead instance's lease expired (+skew) at %s: its lease was not respected",
			g1.Format(time.StampMilli), takeover.Format(time.StampMilli))
	}
	if n := r.total.Events["journal_replayed"]; n != 0 {
		t.Errorf("%d journal replays, want 0: nothing was journaled", n)
	}
}

// TestCrashDuringIssuerCall kills the refreshing instance while its
// refresh request is in flight (the dev issuer holds every refresh for
// 800ms and then processes it although the client is gone, as a real
// issuer may). Expected: the lineage is lost; this is the "maybe
// delivered" window the protocol cannot close. The survivors make exactly
// one more attempt after the lease expired, which is rejected, and report
// provider.ErrLineageBroken.
func TestCrashDuringIssuerCall(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "issuing", failpointDelay: 200 * time.Millisecond, refreshDelay: 800 * time.Millisecond, lost: true})
	r.checkLost(t)
}

// TestCrashAfterIssuerAnswered kills the refreshing instance after the
// issuer answered and before the new pair is journaled: the one step at
// which the lineage may be lost (the window is a few lines of code: no I/O
// between the issuer's answer and the journal write). Expected: lineage
// broken, with exactly one extra, rejected attempt after the lease expired.
func TestCrashAfterIssuerAnswered(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "issued", lost: true})
	r.checkLost(t)
}

// TestCrashAfterJournal kills the refreshing instance after it journaled
// the new pair and before the commit. Expected: no loss and no extra issuer
// call: the restarted instance replays the journal and commits the dead
// instance's pair (the very pair the journal holds) as generation 1.
func TestCrashAfterJournal(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "journaled"})
	if len(r.journal) != 1 || r.journalGen != 1 {
		t.Fatalf("after the crash: journal entries %v (generation %d), want one entry of generation 1", r.journal, r.journalGen)
	}
	r.checkClean(t)
	if n := r.total.Events["journal_replayed"]; n != 1 {
		t.Errorf("%d journal replays, want 1", n)
	}
	found := false
	for _, p := range r.total.Pairs {
		if p.Generation == 1 {
			found = found || p.Fingerprint == r.journalFP
			if p.Fingerprint != r.journalFP {
				t.Errorf("generation 1 served as %s, not the journaled pair %s", p.Fingerprint, r.journalFP)
			}
		}
	}
	if !found {
		t.Errorf("the journaled pair (generation 1) was never served")
	}
}

// TestCrashAfterCommit kills the refreshing instance right after its
// commit, before it cleared its journal entry. Expected: clean; the
// restarted instance finds the entry superseded (generation 1 is stored)
// and discards it without any issuer call.
func TestCrashAfterCommit(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	r := runCrash(t, crashCase{step: "committed"})
	if r.afterCrash.Pair.Generation != 1 || r.afterCrash.Lease != nil {
		t.Fatalf("after the crash: generation %d, lease %+v; want generation 1 committed", r.afterCrash.Pair.Generation, r.afterCrash.Lease)
	}
	if len(r.journal) != 1 {
		t.Errorf("journal entries after a crash before clearing the journal: %v, want 1", r.journal)
	}
	r.checkClean(t)
	if n := r.total.Events["journal_replayed"]; n != 0 {
		t.Errorf("%d journal replays, want 0: the entry was superseded", n)
	}
}
