package refresh

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

const testKey = "cred"

type fixture struct {
	t       *testing.T
	clock   *fakeClock
	be      *memBackend
	iss     *fakeIssuer
	dir     string
	metrics *recordingMetrics
	first   provider.Pair
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, clock: newFakeClock(), be: newMem(t), dir: t.TempDir(), metrics: &recordingMetrics{}}
	f.iss = newIssuer(f.clock, time.Hour)
	f.first = f.iss.mint()
	f.be.put(testKey, &provider.Record{Pair: f.first})
	return f
}

func (f *fixture) engine(holder string, optFns ...func(*Options)) *Engine {
	f.t.Helper()
	e, err := New(f.be, f.iss, testKey, append([]func(*Options){func(o *Options) {
		o.Clock = f.clock
		o.Holder = holder
		o.JournalDir = f.dir
		o.Metrics = f.metrics
		o.MinValidity = time.Minute
		o.LeaseDuration = 10 * time.Second
		o.IssuerTimeout = 2 * time.Second
		o.ClockSkew = time.Second
		o.RetryBackoff = 10 * time.Millisecond
		o.MaxRetryBackoff = 50 * time.Millisecond
	}}, optFns...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { e.Close() })
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustGet(t *testing.T, e *Engine) provider.Pair {
	t.Helper()
	p, err := e.Credential(ctx(t))
	if err != nil {
		t.Fatalf("Credential: %v", err)
	}
	return p
}

// expire moves the clock to where the current pair has 30s left, below
// MinValidity, so callers must wait for a refresh.
func (f *fixture) expire(p provider.Pair) {
	f.clock.Advance(p.ValidUntil.Sub(f.clock.Now()) - 30*time.Second)
}

func TestServesFromCacheWithoutIssuerCalls(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	for i := 0; i < 100; i++ {
		if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
			t.Fatalf("got %s, want the stored pair", p.AuthToken)
		}
		f.clock.Advance(20 * time.Second) // 100 x 20s = 33 minutes: before the window
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer calls = %d, want 0", calls)
	}
}

func TestOneRefreshForManyCallers(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	mustGet(t, e)
	f.expire(f.first)
	var wg sync.WaitGroup
	got := make([]provider.Pair, 100)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i] = mustGet(t, e)
		}(i)
	}
	wg.Wait()
	for _, p := range got {
		if p.Generation != 1 || p.AuthToken == f.first.AuthToken {
			t.Fatalf("caller got generation %d, want the refreshed generation 1", p.Generation)
		}
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Fatalf("issuer calls = %d, want 1", calls)
	}
	rec := f.be.record(testKey)
	if rec.Pair.Generation != 1 || rec.Lease != nil || rec.Pair.AuthToken != got[0].AuthToken {
		t.Fatalf("stored record = gen %d lease %v, want gen 1 without lease holding the new pair", rec.Pair.Generation, rec.Lease)
	}
	if f.metrics.get(EventCommitted) != 1 {
		t.Errorf("committed events = %d, want 1", f.metrics.get(EventCommitted))
	}
}

func TestWindowServesOldPairAndRefreshesInBackground(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	mustGet(t, e)
	// Past every instance's point in the window (its first 45 minutes to
	// about 55.5 minutes), 4 minutes valid.
	f.clock.Advance(56 * time.Minute)
	if p := mustGet(t, e); p.Generation != 0 {
		t.Fatalf("in the window the caller waited for the refresh: got generation %d", p.Generation)
	}
	deadline := time.Now().Add(5 * time.Second)
	for mustGet(t, e).Generation != 1 {
		if time.Now().After(deadline) {
			t.Fatal("background refresh never published generation 1")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdoptsAnotherInstancesCommit(t *testing.T) {
	f := newFixture(t)
	a, b := f.engine("a"), f.engine("b")
	mustGet(t, a)
	mustGet(t, b)
	f.expire(f.first)
	pa := mustGet(t, a)
	pb := mustGet(t, b)
	if pa != pb || pa.Generation != 1 {
		t.Fatalf("b did not adopt a's pair: a gen %d, b gen %d", pa.Generation, pb.Generation)
	}
	if calls, reuses := f.iss.stats(); calls != 1 || reuses != 0 {
		t.Fatalf("issuer calls = %d, reuses = %d; want 1, 0", calls, reuses)
	}
	if f.metrics.get(EventAdopted) == 0 {
		t.Error("no adopted event")
	}
}

func TestManyInstancesSpendEachTokenOnce(t *testing.T) {
	f := newFixture(t)
	var engines []*Engine
	for _, h := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		engines = append(engines, f.engine(h))
	}
	var last provider.Pair = f.first
	for gen := 1; gen <= 5; gen++ {
		f.expire(last)
		var wg sync.WaitGroup
		for _, e := range engines {
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(e *Engine) {
					defer wg.Done()
					p := mustGet(t, e)
					if !p.ValidFor(f.clock.Now(), time.Minute) {
						t.Errorf("served a pair with less than MinValidity left")
					}
				}(e)
			}
		}
		wg.Wait()
		last = f.be.record(testKey).Pair
		if int(last.Generation) != gen {
			t.Fatalf("stored generation = %d, want %d", last.Generation, gen)
		}
	}
	if calls, reuses := f.iss.stats(); calls != 5 || reuses != 0 {
		t.Fatalf("issuer calls = %d, reuses = %d; want 5, 0", calls, reuses)
	}
}

func TestWaitsForLiveLeaseThenAdopts(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	// Another instance holds a live lease and commits a little later.
	rec := &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "other", Expires: f.clock.Now().Add(10 * time.Second)}}
	f.be.put(testKey, rec)
	go func() {
		time.Sleep(200 * time.Millisecond)
		next := f.iss.mint()
		next.Generation = 1
		f.be.put(testKey, &provider.Record{Pair: next})
	}()
	p := mustGet(t, e)
	if p.Generation != 1 {
		t.Fatalf("got generation %d, want the lease holder's 1", p.Generation)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer calls = %d while another instance held the lease, want 0", calls)
	}
}

func TestWaitingCallerHonoursOwnDeadline(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	f.be.put(testKey, &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "other", Expires: f.clock.Now().Add(10 * time.Second)}})
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Credential(c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("caller waited %v past its 100ms deadline", waited)
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	f.be.put(testKey, &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "dead", Expires: f.clock.Now().Add(-2 * time.Second)}})
	if p := mustGet(t, e); p.Generation != 1 {
		t.Fatalf("got generation %d, want 1 after taking over an expired lease", p.Generation)
	}
}

func TestLeaseWithinClockSkewIsRespected(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a", func(o *Options) { o.ClockSkew = 30 * time.Second })
	f.expire(f.first)
	// Expired 5s ago by our clock, but within the 30s skew allowance.
	f.be.put(testKey, &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "slow", Expires: f.clock.Now().Add(-5 * time.Second)}})
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := e.Credential(c); err == nil {
		t.Fatal("overtook a lease within the clock-skew allowance")
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer calls = %d, want 0", calls)
	}
}

func TestOneCallersCancelDoesNotFailOthers(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	f.iss.block = make(chan struct{})
	c1, cancel1 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := e.Credential(c1); errc <- err }()
	res := make(chan provider.Pair, 1)
	go func() { res <- mustGet(t, e) }()
	time.Sleep(50 * time.Millisecond)
	cancel1()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: err = %v", err)
	}
	close(f.iss.block)
	if p := <-res; p.Generation != 1 {
		t.Fatalf("other caller got generation %d, want 1", p.Generation)
	}
}

func TestRejectedAdoptsNewerGeneration(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	newer := f.iss.mint()
	newer.Generation = 1
	f.iss.script(func(provider.Pair) (provider.Pair, error) {
		// Meanwhile another instance committed (as after a lease takeover).
		f.be.put(testKey, &provider.Record{Pair: newer})
		return rejected(provider.Pair{})
	})
	if p := mustGet(t, e); p.AuthToken != newer.AuthToken {
		t.Fatalf("did not adopt the newer generation after a rejection")
	}
}

func TestRejectedBreaksLineageAndStopsEveryone(t *testing.T) {
	f := newFixture(t)
	a, b := f.engine("a"), f.engine("b")
	f.expire(f.first)
	f.iss.script(rejected)
	_, err := a.Credential(ctx(t))
	if !errors.Is(err, provider.ErrLineageBroken) || !errors.Is(err, provider.ErrRefreshRejected) {
		t.Fatalf("err = %v, want ErrLineageBroken wrapping ErrRefreshRejected", err)
	}
	rec := f.be.record(testKey)
	if rec.Broken == nil || rec.Lease != nil {
		t.Fatalf("record not marked broken (broken %v, lease %v)", rec.Broken, rec.Lease)
	}
	// Another instance must not present the rejected token again (I1).
	if _, err := b.Credential(ctx(t)); !errors.Is(err, provider.ErrLineageBroken) {
		t.Fatalf("second instance: err = %v, want ErrLineageBroken", err)
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Fatalf("issuer calls = %d, want 1", calls)
	}
}

func TestNotDeliveredReleasesLeaseAndKeepsServing(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	mustGet(t, e)
	f.clock.Advance(50 * time.Minute)
	f.iss.script(notDelivered)
	if _, err := e.slow(ctx(t), true); !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("err = %v, want ErrNotDelivered", err)
	}
	if rec := f.be.record(testKey); rec.Lease != nil || rec.Pair.Generation != 0 {
		t.Fatalf("lease not released after an undelivered call: %+v", rec.Lease)
	}
	if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
		t.Fatal("stopped serving the still-valid pair")
	}
}

func TestMaybeDeliveredRetriesOnceWithSameToken(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	var seen []string
	f.iss.script(func(p provider.Pair) (provider.Pair, error) {
		seen = append(seen, p.RefreshToken)
		return maybeDelivered(p)
	}, func(p provider.Pair) (provider.Pair, error) {
		seen = append(seen, p.RefreshToken)
		return f.iss.mint(), nil
	})
	if p := mustGet(t, e); p.Generation != 1 {
		t.Fatalf("got generation %d, want 1", p.Generation)
	}
	if len(seen) != 2 || seen[0] != seen[1] || seen[0] != f.first.RefreshToken {
		t.Fatalf("retry presented %v, want the same token twice", seen)
	}
}

func TestMaybeDeliveredThenRejectedIsLineageBroken(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	f.iss.script(maybeDelivered, rejected)
	if _, err := e.Credential(ctx(t)); !errors.Is(err, provider.ErrLineageBroken) {
		t.Fatalf("err = %v, want ErrLineageBroken", err)
	}
}

func TestMaybeDeliveredTwiceKeepsLease(t *testing.T) {
	f := newFixture(t)
	e, other := f.engine("a"), f.engine("b")
	f.expire(f.first)
	f.iss.script(maybeDelivered, maybeDelivered)
	if _, err := e.Credential(ctx(t)); err == nil || !provider.IsTransient(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	rec := f.be.record(testKey)
	if rec.Lease == nil || rec.Lease.Holder != "a" {
		t.Fatalf("lease not kept by the holder after a maybe-delivered failure: %+v", rec.Lease)
	}
	// Nobody else may present the maybe-spent token while the lease lives.
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := other.Credential(c); err == nil {
		t.Fatal("another instance refreshed past a live lease")
	}
	if calls, _ := f.iss.stats(); calls != 2 {
		t.Fatalf("issuer calls = %d, want 2 (the holder's call and its one retry)", calls)
	}
	// The holder itself retries with the same token after its backoff.
	f.clock.Advance(time.Second)
	if p := mustGet(t, e); p.Generation != 1 {
		t.Fatalf("holder's retry: got generation %d, want 1", p.Generation)
	}
}

func TestCommitDeferredOnTransientErrorThenRetried(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	var failing = true
	var mu sync.Mutex
	f.be.casErr = func(v []byte) error {
		mu.Lock()
		defer mu.Unlock()
		r, _ := provider.DecodeRecord(v)
		if failing && r != nil && r.Lease == nil && r.Pair.Generation == 1 {
			return provider.Transient(errors.New("503 slow down"))
		}
		return nil
	}
	p := mustGet(t, e)
	if p.Generation != 1 {
		t.Fatalf("got generation %d, want the new pair served from memory", p.Generation)
	}
	if rec := f.be.record(testKey); rec.Pair.Generation != 0 {
		t.Fatalf("commit landed despite the failure")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for f.be.record(testKey).Pair.Generation != 1 {
		if time.Now().After(deadline) {
			t.Fatal("background retry never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Fatalf("issuer calls = %d, want 1", calls)
	}
}

func TestCommitConflictWithNewerGenerationOrphans(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	newer := f.iss.mint()
	newer.Generation = 2
	f.iss.script(func(p provider.Pair) (provider.Pair, error) {
		// While we call, someone takes over and commits two generations.
		f.be.put(testKey, &provider.Record{Pair: newer})
		return f.iss.mint(), nil
	})
	if p := mustGet(t, e); p.AuthToken != newer.AuthToken {
		t.Fatalf("did not adopt the newer generation after a commit conflict")
	}
	if f.metrics.get(EventOrphaned) != 1 {
		t.Fatalf("orphaned events = %d, want 1", f.metrics.get(EventOrphaned))
	}
}

func TestCommitConflictWithSameGenerationCommitsOver(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.expire(f.first)
	var mine provider.Pair
	f.iss.script(func(p provider.Pair) (provider.Pair, error) {
		// Our lease was taken over by a slow peer that has not committed.
		f.be.put(testKey, &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "peer", Expires: f.clock.Now().Add(time.Minute)}})
		mine = f.iss.mint()
		return mine, nil
	})
	p := mustGet(t, e)
	if p.AuthToken != mine.AuthToken || f.be.record(testKey).Pair.AuthToken != mine.AuthToken {
		t.Fatal("our legitimately issued successor was not committed over the stale claim")
	}
}

func TestJournalReplayCommitsDeadProcessesPair(t *testing.T) {
	f := newFixture(t)
	f.expire(f.first)
	// Simulate a process that claimed, got a pair, journaled it and died.
	claim := &provider.Record{Pair: f.first, Lease: &provider.Lease{Holder: "dead", Expires: f.clock.Now().Add(10 * time.Second)}}
	claimed := f.be.put(testKey, claim)
	next := f.iss.mint()
	next.Generation = 1
	j := &journal{dir: f.dir, key: testKey, holder: "dead"}
	en, err := j.write(&pendingCommit{spentGen: f.first.Generation, spentHash: tokenDigest(f.first.RefreshToken), next: &provider.Record{Pair: next}, expected: claimed})
	if err != nil {
		t.Fatal(err)
	}
	en.release() // the process dies: its lock goes away
	e := f.engine("a")
	if p := mustGet(t, e); p.AuthToken != next.AuthToken {
		t.Fatal("journal replay did not commit the dead process's pair")
	}
	if f.be.record(testKey).Pair.Generation != 1 {
		t.Fatal("replayed pair not committed")
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer calls = %d, want 0: the journaled pair must be used", calls)
	}
}

func TestJournalSupersededIsDiscarded(t *testing.T) {
	f := newFixture(t)
	next := f.iss.mint()
	next.Generation = 1
	j := &journal{dir: f.dir, key: testKey, holder: "dead"}
	en, err := j.write(&pendingCommit{spentGen: f.first.Generation, spentHash: tokenDigest(f.first.RefreshToken), next: &provider.Record{Pair: next}, expected: "stale"})
	if err != nil {
		t.Fatal(err)
	}
	en.release()
	newer := f.iss.mint()
	newer.Generation = 3
	f.be.put(testKey, &provider.Record{Pair: newer})
	e := f.engine("a")
	f.expire(newer)
	f.clock.Advance(-time.Hour) // back before the window: no refresh needed
	e.slow(ctx(t), false)
	if got := f.be.record(testKey).Pair.Generation; got != 3 {
		t.Fatalf("superseded journal entry overwrote generation 3 with %d", got)
	}
}

func TestNeverExpiringIsNeverRefreshed(t *testing.T) {
	f := newFixture(t)
	never := provider.Pair{AuthToken: "forever"}
	f.be.put(testKey, &provider.Record{Pair: never})
	e := f.engine("a")
	for i := 0; i < 5; i++ {
		mustGet(t, e)
		f.clock.Advance(1000 * time.Hour)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer calls = %d for a never-expiring pair", calls)
	}
}

func TestExpiredPairNeedsRebootstrap(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	f.clock.Advance(2 * time.Hour)
	_, err := e.Credential(ctx(t))
	if !errors.Is(err, provider.ErrExpired) || !errors.Is(err, provider.ErrLineageBroken) {
		t.Fatalf("err = %v, want ErrExpired and ErrLineageBroken (a person must re-bootstrap)", err)
	}
	var ee *ExpiredError
	if !errors.As(err, &ee) || ee.Token != "auth token" || !ee.At.Equal(f.first.ValidUntil) {
		t.Errorf("err = %#v, want an ExpiredError naming the auth token's expiry %v", err, f.first.ValidUntil)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatalf("issuer called for an expired pair")
	}
}

func TestWriteCheckFailsBeforeSpending(t *testing.T) {
	f := newFixture(t)
	be := &checkingBackend{memBackend: f.be, err: provider.ErrPermission}
	e, err := New(be, f.iss, testKey, func(o *Options) { o.Clock = f.clock; o.JournalDir = f.dir; o.MinValidity = time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f.expire(f.first)
	if _, err := e.Credential(ctx(t)); !errors.Is(err, provider.ErrPermission) {
		t.Fatalf("err = %v, want ErrPermission", err)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Fatal("refresh token spent although the result could not be stored")
	}
}

type checkingBackend struct {
	*memBackend
	err error
}

func (b *checkingBackend) CheckWrite(context.Context, string) error { return b.err }

func TestReadOnlyBackendRefreshesInMemory(t *testing.T) {
	f := newFixture(t)
	f.be.ro = true
	e := f.engine("a", func(o *Options) { o.UnsafeRefreshInMemory = true })
	f.expire(f.first)
	p := mustGet(t, e)
	if p.Generation != 1 {
		t.Fatalf("got generation %d, want 1 from the in-memory chain", p.Generation)
	}
	f.expire(p)
	if p2 := mustGet(t, e); p2.Generation != 2 {
		t.Fatalf("got generation %d, want 2: the chain must continue from memory", p2.Generation)
	}
	if _, reuses := f.iss.stats(); reuses != 0 {
		t.Fatalf("reused a spent token %d times", reuses)
	}
}

func TestForcedRefresh(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	mustGet(t, e)
	p, err := e.Refresh(ctx(t))
	if err != nil || p.Generation != 1 {
		t.Fatalf("Refresh = gen %d, %v; want generation 1", p.Generation, err)
	}
}

// TestMissingCredentialIsNotFound: the library states the fact (which key,
// ErrNotFound); the command adds how to store one.
func TestMissingCredentialIsNotFound(t *testing.T) {
	f := newFixture(t)
	e, _ := New(f.be, f.iss, "absent", func(o *Options) { o.JournalDir = f.dir })
	defer e.Close()
	_, err := e.Credential(ctx(t))
	if !errors.Is(err, provider.ErrNotFound) || contains(err.Error(), "credhelper") {
		t.Fatalf("err = %v, want ErrNotFound and no command advice", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	f := newFixture(t)
	bad := []func(*Options){
		func(o *Options) { o.RefreshFraction = 1.5 },
		func(o *Options) { o.MinValidity = 10 * time.Minute },
		func(o *Options) { o.IssuerTimeout = -time.Second },
		func(o *Options) { o.LeaseDuration = time.Millisecond },
		func(o *Options) { o.HealBackoff = -time.Second },
		func(o *Options) { o.Jitter = -1 },
	}
	for i, fn := range bad {
		if _, err := New(f.be, f.iss, testKey, func(o *Options) { o.JournalDir = f.dir }, fn); err == nil {
			t.Errorf("case %d: invalid options accepted", i)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	f := newFixture(t)
	e := f.engine("a")
	mustGet(t, e)
	c := context.Background()
	if n := testing.AllocsPerRun(1000, func() { e.Credential(c) }); n != 0 {
		t.Fatalf("hot path allocates %v times per call", n)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || index(s, sub) >= 0) }

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestRepeatedFailureLoggedOnce: every failed refresh is counted, but a
// retry that fails as the last one did is logged at debug, so a silent
// issuer leaves one info line per streak.
func TestRepeatedFailureLoggedOnce(t *testing.T) {
	f := newFixture(t)
	f.iss.script(notDelivered, notDelivered, notDelivered)
	var log testexec.Buffer
	e := f.engine("a", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f.expire(f.first)
	for i := range 3 {
		if _, err := e.Credential(ctx(t)); err == nil {
			t.Fatalf("attempt %d: served although the issuer failed", i)
		}
		f.clock.Advance(time.Second) // past the retry backoff (at most 50ms)
	}
	mustGet(t, e)
	info := strings.Count(log.String(), `level=INFO msg="credhelper refresh: failed"`)
	debug := strings.Count(log.String(), `level=DEBUG msg="credhelper refresh: failed"`)
	if n := f.metrics.get(EventFailed); n != 3 || info != 1 || debug != 2 {
		t.Errorf("failed events counted %d, logged %d at info and %d at debug; want 3, 1, 2:\n%s", n, info, debug, log.String())
	}
}
