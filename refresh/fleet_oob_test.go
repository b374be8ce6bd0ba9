package refresh_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// casHook wraps a backend and runs a function before its n-th
// CompareAndSwap: the engine's first CompareAndSwap of a refresh is its
// claim, the second its commit.
type casHook struct {
	provider.Backend
	mu     sync.Mutex
	n      int
	before map[int]func()
}

func (h *casHook) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	h.mu.Lock()
	h.n++
	f := h.before[h.n]
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Backend.CompareAndSwap(ctx, key, expected, value)
}

// CheckWrite forwards to the wrapped backend, so the engine's pre-claim
// write check still happens.
func (h *casHook) CheckWrite(ctx context.Context, key string) error {
	if wc, ok := h.Backend.(provider.WriteChecker); ok {
		return wc.CheckWrite(ctx, key)
	}
	return nil
}

// outOfBandWriter writes a raw value to the store the way a person or a
// foreign tool does, bypassing credhelper's compare-and-swap.
type outOfBandWriter func(t *testing.T, value []byte)

func fileWriter(e *fleetEnv) outOfBandWriter {
	return func(t *testing.T, value []byte) {
		// Another well-behaved client (a `credhelper put` elsewhere):
		// its own backend instance, load then swap.
		b, err := file.New()
		if err != nil {
			t.Fatal(err)
		}
		cur, err := b.Load(ctxFor(t, 10*time.Second), e.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.CompareAndSwap(ctxFor(t, 10*time.Second), e.key, cur.Version, value); err != nil {
			t.Fatalf("out-of-band write: %v", err)
		}
	}
}

func awssmWriter(e *fleetEnv) outOfBandWriter {
	return func(t *testing.T, value []byte) {
		// What `aws secretsmanager put-secret-value` does on AWS: a new
		// version that takes AWSCURRENT from whichever version holds it,
		// whatever that is. moto 5.2.1 gets a plain PutSecretValue wrong
		// after a stage move (it leaves two versions labelled AWSCURRENT,
		// see issue 4), so the same outcome is produced in two calls: put
		// the version under a label of its own, then move AWSCURRENT to it
		// from its current holder.
		ctx := ctxFor(t, 10*time.Second)
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := secretsmanager.NewFromConfig(cfg)
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(e.key)})
		if err != nil {
			t.Fatal(err)
		}
		var cur []string
		for v, stages := range d.VersionIdsToStages {
			for _, s := range stages {
				if s == "AWSCURRENT" {
					cur = append(cur, v)
				}
			}
		}
		if len(cur) != 1 {
			t.Fatalf("AWSCURRENT on %v before the out-of-band write, want one version", cur)
		}
		put, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(e.key), SecretString: aws.String(string(value)), VersionStages: []string{"by-hand"}})
		if err != nil {
			t.Fatalf("out-of-band PutSecretValue: %v", err)
		}
		if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(e.key), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: put.VersionId, RemoveFromVersionId: aws.String(cur[0]),
		}); err != nil {
			t.Fatalf("out-of-band move of AWSCURRENT: %v", err)
		}
	}
}

func vaultWriter(e *fleetEnv) outOfBandWriter {
	return func(t *testing.T, value []byte) {
		// As `vault kv put` does: a write without check-and-set.
		mount, path, ok := strings.Cut(e.key, "/fleet/")
		if !ok {
			t.Fatalf("unexpected vault key %q", e.key)
		}
		var data map[string]any
		if err := json.Unmarshal(value, &data); err != nil {
			t.Fatal(err)
		}
		if _, err := vaultRoot(t).KVv2(mount).Put(ctxFor(t, 10*time.Second), "fleet/"+path, data); err != nil {
			t.Fatalf("out-of-band kv put: %v", err)
		}
	}
}

// TestFleetOutOfBandWrite has another client write the stored secret while
// the engine refreshes it, and checks that the engine's CompareAndSwap
// detects the conflict and the engine adopts the other client's pair rather
// than overwriting it: the stored secret and what callers get are the
// out-of-band pair, and the issuer saw no more calls than the engine's
// own claim allowed.
//
//   - BetweenLoadAndClaim: a fresh pair in the form Momento's rotation
//     tooling and people write ({"apiKey","refreshToken","validUntil"}, no
//     generation) lands after the engine loaded the due record and before
//     its claim. The claim loses; the engine adopts the fresh pair without
//     calling the issuer.
//   - NewerGenerationBeforeCommit: a record of a higher generation lands
//     after the engine's claim and issuer call, before its commit. The
//     commit loses; the engine adopts the newer generation and reports its
//     own pair as orphaned.
//
// The same write of a pair without a generation before the commit is in
// fleet_oob_commit_test.go (build tag engine_oob_fix): the engine
// currently overwrites it.
func TestFleetOutOfBandWrite(t *testing.T) {
	for _, backend := range []string{"file", "awssm", "vault"} {
		t.Run(backend, func(t *testing.T) {
			t.Run("BetweenLoadAndClaim", func(t *testing.T) { outOfBand(t, backend, 1, 0) })
			t.Run("NewerGenerationBeforeCommit", func(t *testing.T) { outOfBand(t, backend, 2, 7) })
		})
	}
}

// outOfBand writes a fresh pair of generation gen (0: no generation field)
// out of band just before the engine's casN-th CompareAndSwap (1: claim,
// 2: commit) and checks that the engine adopts it.
func outOfBand(t *testing.T, backend string, casN int, gen uint64) {
	// The stored pair is minted 5s in the past with an 8s lifetime: 3s
	// left, which this engine's MinValidity (3.5s) does not accept, so its
	// first call waits for the refresh instead of being served at once.
	var shift atomic.Int64
	shift.Store(int64(-5 * time.Second))
	tm := crashTiming
	e := newFleetEnv(t, backend, "momento", tm, func(o *dev.Options) {
		o.Clock = func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
	})
	shift.Store(0)
	write := map[string]func(*fleetEnv) outOfBandWriter{"file": fileWriter, "awssm": awssmWriter, "vault": vaultWriter}[backend](e)

	theirs, err := e.srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]any{"apiKey": theirs.AuthToken, "refreshToken": theirs.RefreshToken, "validUntil": theirs.ValidUntil.Unix()}
	if gen > 0 {
		fields["generation"] = gen
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	wrote := false
	hooked := &casHook{Backend: e.backend, before: map[int]func(){casN: func() { write(t, raw); wrote = true }}}
	opt, err := engineOptions(e.params)
	if err != nil {
		t.Fatal(err)
	}
	events := &countingMetrics{m: map[refresh.Event]int{}}
	eng, err := refresh.New(hooked, mustIssuer(t, e.params), e.key, opt, func(o *refresh.Options) {
		o.Metrics = events
		o.MinValidity, o.RefreshFloor = 3500*time.Millisecond, 5*time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	got, err := eng.Credential(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatalf("Credential: %v", err)
	}
	if !wrote {
		t.Fatalf("the engine made fewer than %d CompareAndSwaps: the out-of-band write never happened", casN)
	}
	st := e.srv.Stats()
	rec, _ := e.record()
	t.Logf("dev issuer %+v; stored generation %d; engine events %v", st, rec.Pair.Generation, events.snapshot())
	if got.AuthToken != theirs.AuthToken {
		t.Errorf("Credential returned a pair of generation %d (%s), not the out-of-band pair (%s)",
			got.Generation, provider.Fingerprint(got.AuthToken), provider.Fingerprint(theirs.AuthToken))
	}
	if rec.Pair.AuthToken != theirs.AuthToken || rec.Pair.RefreshToken != theirs.RefreshToken {
		t.Errorf("the out-of-band pair was overwritten: stored generation %d is %s, want the out-of-band %s",
			rec.Pair.Generation, provider.Fingerprint(rec.Pair.AuthToken), provider.Fingerprint(theirs.AuthToken))
	}
	if rec.Lease != nil {
		t.Errorf("stored record carries a lease of %s", rec.Lease.Holder)
	}
	if events.get(refresh.EventConflict)+events.get(refresh.EventClaimLost) == 0 {
		t.Errorf("no conflict event: the engine did not notice the out-of-band write")
	}
	wantAttempts := uint64(casN - 1) // a refresh happened only if the claim won
	if st.RefreshAttempts != wantAttempts || st.Rejected != 0 || st.Reuses != 0 {
		t.Errorf("dev issuer: %d refresh attempts, %d rejected, %d reuses; want %d, 0, 0", st.RefreshAttempts, st.Rejected, st.Reuses, wantAttempts)
	}
	if casN == 2 && events.get(refresh.EventOrphaned) != 1 {
		t.Errorf("%d orphaned events, want 1: the engine's own refreshed pair must be reported as orphaned", events.get(refresh.EventOrphaned))
	}
	again, err := eng.Credential(ctxFor(t, 10*time.Second))
	if err != nil || again.AuthToken != theirs.AuthToken {
		t.Errorf("second Credential: err %v, out-of-band pair %v", err, again.AuthToken == theirs.AuthToken)
	}
	if left := e.journalEntries(); len(left) != 0 {
		t.Errorf("journal entries left: %v", left)
	}
}

func mustIssuer(t *testing.T, p map[string]string) provider.Issuer {
	t.Helper()
	iss, _, err := openIssuer(p)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// countingMetrics counts engine events in this process.
type countingMetrics struct {
	mu sync.Mutex
	m  map[refresh.Event]int
}

func (c *countingMetrics) Count(_ string, ev refresh.Event) {
	c.mu.Lock()
	c.m[ev]++
	c.mu.Unlock()
}

func (c *countingMetrics) SecondsToExpiry(string, float64) {}

func (c *countingMetrics) get(ev refresh.Event) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ev]
}

func (c *countingMetrics) snapshot() map[refresh.Event]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[refresh.Event]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
