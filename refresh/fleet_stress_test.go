package refresh_test

import (
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/fleet"
)

// stressCase is one multi-process stress run: processes x goroutines
// sharing one credential over at least gens generations.
type stressCase struct {
	backend, issuer       string
	processes, goroutines int
	gens                  uint64
	limit                 time.Duration // the run fails if gens are not reached by then
}

// runStress runs the fleet and checks I1-I5 from the dev issuer's counters,
// the stored record and what every caller was served:
//   - I1: issuer refresh calls == refresh attempts == generations committed
//     (each refresh token presented exactly once), zero rejected, zero
//     reuses, zero families revoked;
//   - I2: the stored generation equals the issuer's refresh count, no lease
//     or journal entry is left, every generation 0..N was served;
//   - I3: every served pair had at least MinValidity left when served and
//     an auth token that decodes and had not expired; no generation was
//     served as two different pairs; no caller error;
//   - I5: no caller got a generation lower than one its process had
//     already served before the call began, and the stored generation,
//     polled every 100ms, never decreased.
//
// Worker processes are this test binary, so under `go test -race` they run
// with the race detector too.
func runStress(t *testing.T, c stressCase) {
	e := newFleetEnv(t, c.backend, c.issuer, stressTiming)
	poll := fleet.Poll(e.backend, e.key, 100*time.Millisecond)
	started := time.Now()
	res, err := fleet.Run(ctxFor(t, c.limit+time.Minute), e.spec(c.processes, c.goroutines, c.gens, c.limit))
	store, regress, loadErrs := poll.Stop()
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	if loadErrs > 0 {
		t.Logf("store poller: %d loads failed", loadErrs)
	}
	total := &res.Total
	rec, _ := e.record()
	gens := rec.Pair.Generation
	if gens < c.gens {
		t.Errorf("only %d generations committed in %v, want at least %d", gens, c.limit, c.gens)
	}
	e.check(total, regress, want{refreshes: gens, attempts: gens, generation: -1, maxErrors: 0})
	logTimeline(t, started, store, total)
	t.Logf("%s + %s: %d processes x %d goroutines, %d generations in %v; latency of calls that waited for a new generation: p50 %v p99 %v max %v (n=%d); cached: p50 %v p99 %v max %v (n=%d)",
		c.backend, c.issuer, c.processes, c.goroutines, gens, time.Since(started).Round(time.Millisecond),
		total.Waited.Quantile(0.5), total.Waited.Quantile(0.99), total.Waited.Max(), total.Waited.Count(),
		total.Cached.Quantile(0.5), total.Cached.Quantile(0.99), total.Cached.Max(), total.Cached.Count())
}

// TestFleetStressFile is the engine's main multi-process stress test: 4
// processes x 16 goroutines share one file-backed credential over at least
// 10 generations of 4-second pairs against the dev issuer's Momento
// protocol, with one journal directory per host (shared).
func TestFleetStressFile(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	runStress(t, stressCase{backend: "file", issuer: "momento", processes: 4, goroutines: 16, gens: 10, limit: 45 * time.Second})
}

// TestFleetStressOAuth2 runs the stress test with the oauth2 issuer against
// the dev issuer's OAuth2 token endpoint (refresh grant with rotation and
// reuse detection).
func TestFleetStressOAuth2(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	runStress(t, stressCase{backend: "file", issuer: "oauth2", processes: 4, goroutines: 16, gens: 4, limit: 30 * time.Second})
}

// TestFleetStressAWSSM runs the stress test on Secrets Manager (moto),
// with fewer generations and processes: moto answers one request at a
// time.
func TestFleetStressAWSSM(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	runStress(t, stressCase{backend: "awssm", issuer: "momento", processes: 3, goroutines: 8, gens: 4, limit: 30 * time.Second})
}

// TestFleetStressVault runs the stress test on a KV v2 secret in the real
// Vault test server, in a mount of its own.
func TestFleetStressVault(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	runStress(t, stressCase{backend: "vault", issuer: "momento", processes: 3, goroutines: 8, gens: 4, limit: 30 * time.Second})
}

// TestFleetStressPlugins runs the stress test with backend and issuer both
// behind the plugin boundary: every worker process runs
// examples/fileplugin and examples/devissuerplugin as go-plugin children.
func TestFleetStressPlugins(t *testing.T) {
	if fleet.Child(buildTarget) {
		return
	}
	runStress(t, stressCase{backend: "plugin", issuer: "plugin", processes: 3, goroutines: 8, gens: 4, limit: 30 * time.Second})
}
