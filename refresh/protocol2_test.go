package refresh

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// introspectingIssuer is a fakeIssuer that can tell whether a refresh
// token is still active, as OAuth2 introspection (RFC 7662) does.
type introspectingIssuer struct {
	*fakeIssuer
	asked atomic.Int64
	fail  atomic.Bool // the question fails (the endpoint is down)
}

func (i *introspectingIssuer) RefreshTokenActive(_ context.Context, p provider.Pair) (bool, error) {
	i.asked.Add(1)
	if i.fail.Load() {
		return false, provider.Transient(errors.New("introspection endpoint unavailable"))
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.spent[p.RefreshToken], nil
}

// tick keeps the fake clock in step with real time until stop is closed,
// so that lease expiries by the fake clock pass as real time does.
func tick(c *fakeClock, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			now := time.Now()
			c.Advance(now.Sub(last))
			last = now
		}
	}()
	return &wg
}

// shortLease makes leases short enough to expire during a test.
func shortLease(o *Options) {
	o.LeaseDuration, o.ClockSkew, o.IssuerTimeout = 300*time.Millisecond, 50*time.Millisecond, 10*time.Second
}

// TestRenewalKeepsSlowHolder: the issuer takes four leases to answer; the
// holder renews its lease meanwhile, so another instance never takes it
// for dead and the token is presented exactly once.
func TestRenewalKeepsSlowHolder(t *testing.T) {
	f := newFixture(t)
	a, b := f.engine("a", shortLease), f.engine("b", shortLease)
	f.expire(f.first)
	block := make(chan struct{})
	f.iss.mu.Lock()
	f.iss.block = block
	f.iss.mu.Unlock()
	stop := make(chan struct{})
	wg := tick(f.clock, stop)
	defer func() { close(stop); wg.Wait() }()

	var pa provider.Pair
	var errA error
	done := make(chan struct{})
	go func() { pa, errA = a.Credential(ctx(t)); close(done) }()
	time.Sleep(100 * time.Millisecond) // a claims first
	// b contends while a waits on the slow issuer, for longer than the lease.
	bctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	_, errB := b.Credential(bctx)
	cancel()
	f.iss.mu.Lock()
	f.iss.block = nil
	f.iss.mu.Unlock()
	close(block)
	<-done
	if errA != nil || pa.Generation != 1 {
		t.Fatalf("holder: generation %d, err %v; want 1", pa.Generation, errA)
	}
	if errB == nil {
		t.Log("b got a pair: the holder's commit landed before b's deadline")
	}
	if calls, reuses := f.iss.stats(); calls != 1 || reuses != 0 {
		t.Fatalf("issuer calls %d, reuses %d; want 1, 0 (I1)", calls, reuses)
	}
	if n := f.metrics.get(EventLeaseRenewed); n < 2 {
		t.Errorf("%d lease renewals during four leases, want at least 2", n)
	}
}

// TestHolderThatCannotRenewStopsPresenting: the store refuses every write
// after the claim, so the lease cannot be renewed and runs out while the
// issuer is slow. The holder keeps waiting for the call in flight, whose
// answer is lost here (maybe delivered), and does not present the token
// again: no retry.
func TestHolderThatCannotRenewStopsPresenting(t *testing.T) {
	f := newFixture(t)
	a := f.engine("a", shortLease)
	f.expire(f.first)
	var writes atomic.Int64
	f.be.mu.Lock()
	f.be.casErr = func([]byte) error {
		if writes.Add(1) > 1 { // the claim succeeds, nothing after it
			return provider.Transient(errors.New("store unreachable"))
		}
		return nil
	}
	f.be.mu.Unlock()
	block := make(chan struct{})
	f.iss.mu.Lock()
	f.iss.block = block
	f.iss.mu.Unlock()
	f.iss.script(maybeDelivered, maybeDelivered)
	go func() {
		// Past the lease (300ms): the renewal has failed by then.
		time.Sleep(time.Second)
		f.iss.mu.Lock()
		f.iss.block = nil
		f.iss.mu.Unlock()
		close(block)
	}()
	_, err := a.Credential(ctx(t))
	if err == nil {
		t.Fatal("a holder that lost its lease and its answer returned a pair")
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Errorf("issuer calls %d, want 1: no second presentation after losing the lease", calls)
	}
	if f.metrics.get(EventLeaseLost) != 1 {
		t.Errorf("%d lease_lost events, want 1", f.metrics.get(EventLeaseLost))
	}
}

// TestTakeoverAsksBeforePresenting: a holder spent the token and was cut
// off before committing; its lease expired. The taker asks the issuer,
// learns the token is spent, and waits for the holder's commit instead of
// presenting the token again.
func TestTakeoverAsksBeforePresenting(t *testing.T) {
	f := newFixture(t)
	iss := &introspectingIssuer{fakeIssuer: f.iss}
	f.expire(f.first)
	// The holder spent generation 0's token...
	next, err := f.iss.Refresh(ctx(t), f.first)
	if err != nil {
		t.Fatal(err)
	}
	callsBefore, _ := f.iss.stats()
	// ...and its lease expired.
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "cut-off", Expires: f.clock.Now().Add(-time.Minute), Generation: 0}
	})
	b := f.engineWith(iss, shortLease)
	go func() {
		time.Sleep(200 * time.Millisecond)
		// The holder reaches the store again and commits its pair.
		next.Generation = 1
		f.store(next, nil)
	}()
	p, err := b.Credential(ctx(t))
	if err != nil || p.AuthToken != next.AuthToken {
		t.Fatalf("taker: err %v, adopted the holder's pair %v", err, p.AuthToken == next.AuthToken)
	}
	calls, reuses := f.iss.stats()
	if calls != callsBefore || reuses != 0 || iss.asked.Load() != 1 {
		t.Errorf("issuer calls %d (want %d), reuses %d, introspections %d (want 1)", calls, callsBefore, reuses, iss.asked.Load())
	}
	if f.metrics.get(EventSpentElsewhere) != 1 {
		t.Errorf("%d spent_elsewhere events, want 1", f.metrics.get(EventSpentElsewhere))
	}
}

// TestTakeoverPresentsAnActiveToken: the previous holder died before its
// request left; introspection says the token is active, so the taker
// presents it.
func TestTakeoverPresentsAnActiveToken(t *testing.T) {
	f := newFixture(t)
	iss := &introspectingIssuer{fakeIssuer: f.iss}
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "dead", Expires: f.clock.Now().Add(-time.Minute), Generation: 0}
	})
	f.expire(f.first)
	b := f.engineWith(iss, shortLease)
	if p := mustGet(t, b); p.Generation != 1 {
		t.Fatalf("generation %d, want 1", p.Generation)
	}
	if calls, _ := f.iss.stats(); calls != 1 || iss.asked.Load() != 1 {
		t.Errorf("issuer calls %d, introspections %d; want 1, 1", calls, iss.asked.Load())
	}
}

// bootstrapper counts calls and mints from the fake issuer, or fails.
type bootstrapper struct {
	iss   *fakeIssuer
	calls atomic.Int64
	fail  atomic.Bool
}

func (b *bootstrapper) Bootstrap(context.Context) (provider.Pair, error) {
	b.calls.Add(1)
	if b.fail.Load() {
		return provider.Pair{}, errors.New("session token refused")
	}
	b.iss.mu.Lock()
	defer b.iss.mu.Unlock()
	return b.iss.mint(), nil
}

func TestHealAfterRejection(t *testing.T) {
	f := newFixture(t)
	boot := &bootstrapper{iss: f.iss}
	f.iss.script(rejected)
	a := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot })
	b := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot })
	f.expire(f.first)
	p := mustGet(t, a)
	if p.Generation != 2 || boot.calls.Load() != 1 {
		t.Fatalf("generation %d after %d bootstraps; want 2 (N+2) and 1", p.Generation, boot.calls.Load())
	}
	rec := f.be.record(testKey)
	if rec.Broken != nil || rec.Healed == nil || rec.Healed.Generation != 0 || rec.Pair.AuthToken != p.AuthToken {
		t.Fatalf("stored record: broken %v, healed %+v; want healed from generation 0", rec.Broken, rec.Healed)
	}
	if q := mustGet(t, b); q.AuthToken != p.AuthToken {
		t.Error("another instance did not adopt the healed pair")
	}
	if f.metrics.get(EventHealed) != 1 || boot.calls.Load() != 1 {
		t.Errorf("healed events %d, bootstraps %d; want 1, 1", f.metrics.get(EventHealed), boot.calls.Load())
	}
}

func TestHealBacksOffFleetWide(t *testing.T) {
	f := newFixture(t)
	boot := &bootstrapper{iss: f.iss}
	boot.fail.Store(true)
	f.store(f.first, func(r *provider.Record) { r.Broken = &provider.Broken{Generation: 0, Reason: "test"} })
	f.expire(f.first)
	a := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot; o.HealBackoff = time.Minute })
	if _, err := a.Credential(ctx(t)); !errors.Is(err, provider.ErrLineageBroken) {
		t.Fatalf("err = %v, want ErrLineageBroken after a failed bootstrap", err)
	}
	rec := f.be.record(testKey)
	if rec.Broken == nil || rec.Broken.HealFailures != 1 || !rec.Broken.HealRetryAfter.After(f.clock.Now()) || rec.Lease != nil {
		t.Fatalf("stored broken mark %+v, lease %v; want one failure, a retry time ahead, no lease", rec.Broken, rec.Lease)
	}
	// Another instance honours the backoff: no bootstrap storm.
	b := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot; o.HealBackoff = time.Minute })
	for range 3 {
		b.Credential(ctx(t))
	}
	if n := boot.calls.Load(); n != 1 {
		t.Fatalf("%d bootstraps during the backoff, want 1", n)
	}
	f.clock.Advance(2 * time.Minute)
	boot.fail.Store(false)
	f.iss.lifetime = time.Hour
	c := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot })
	if p := mustGet(t, c); p.Generation != 2 || boot.calls.Load() != 2 {
		t.Fatalf("after the backoff: generation %d, bootstraps %d; want 2, 2", p.Generation, boot.calls.Load())
	}
}

func TestHealExpiredLineage(t *testing.T) {
	f := newFixture(t)
	boot := &bootstrapper{iss: f.iss}
	f.clock.Advance(2 * time.Hour) // the Momento-like key expired: no refresh possible
	a := f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot })
	p := mustGet(t, a)
	if p.Generation != 2 || boot.calls.Load() != 1 {
		t.Fatalf("generation %d, bootstraps %d; want 2, 1", p.Generation, boot.calls.Load())
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("the expired key was presented %d times", calls)
	}
}

func TestOneHealerAcrossInstances(t *testing.T) {
	f := newFixture(t)
	boot := &bootstrapper{iss: f.iss}
	f.store(f.first, func(r *provider.Record) { r.Broken = &provider.Broken{Generation: 0, Reason: "test"} })
	f.expire(f.first)
	var engines []*Engine
	for range 8 {
		engines = append(engines, f.engineWith(f.iss, func(o *Options) { o.Bootstrap = boot }))
	}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := e.Credential(ctx(t)); err != nil || p.Generation != 2 {
				t.Errorf("generation %d, err %v", p.Generation, err)
			}
		}()
	}
	wg.Wait()
	if n := boot.calls.Load(); n != 1 {
		t.Errorf("%d bootstraps by 8 instances, want 1", n)
	}
}

// TestFailedQuestionDoesNotPresent: taking over, the question to the
// issuer fails; the token is not presented, and the record is handed back
// with the previous holder's lease, so the next attempt asks too.
func TestFailedQuestionDoesNotPresent(t *testing.T) {
	f := newFixture(t)
	iss := &introspectingIssuer{fakeIssuer: f.iss}
	iss.fail.Store(true)
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "cut-off", Expires: f.clock.Now().Add(-time.Minute), Generation: 0}
	})
	f.expire(f.first)
	b := f.engineWith(iss, shortLease)
	if _, err := b.Credential(ctx(t)); err == nil || !provider.IsTransient(err) {
		t.Fatalf("err = %v, want a transient error: the question could not be answered", err)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls %d, want 0: nothing presented without an answer", calls)
	}
	if rec := f.be.record(testKey); rec.Lease == nil || rec.Lease.Holder != "cut-off" {
		t.Errorf("stored lease %+v, want the previous holder's, handed back", rec.Lease)
	}
}

// TestOwnLeaseAsksFirst: this process's own lease from a flight that did
// not finish is on the record; its token may have been presented, so the
// issuer is asked before it is presented again.
func TestOwnLeaseAsksFirst(t *testing.T) {
	f := newFixture(t)
	iss := &introspectingIssuer{fakeIssuer: f.iss}
	f.expire(f.first)
	if _, err := f.iss.Refresh(ctx(t), f.first); err != nil { // spent, answer lost
		t.Fatal(err)
	}
	callsBefore, _ := f.iss.stats()
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "a", Expires: f.clock.Now().Add(-time.Minute), Generation: 0}
	})
	a := f.engineWith(iss, shortLease, func(o *Options) { o.Holder = "a" })
	a.Credential(ctx(t))
	if calls, reuses := f.iss.stats(); calls != callsBefore || reuses != 0 {
		t.Errorf("issuer calls %d (want %d), reuses %d: a maybe-spent token was presented without asking", calls, callsBefore, reuses)
	}
	if iss.asked.Load() == 0 {
		t.Error("the issuer was not asked")
	}
}
