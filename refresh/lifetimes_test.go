package refresh

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// policyIssuer is a fakeIssuer that states a RefreshPolicy.
type policyIssuer struct {
	*fakeIssuer
	policy provider.RefreshPolicy
}

func (p policyIssuer) RefreshPolicy() provider.RefreshPolicy { return p.policy }

// oauth2Policy is what an OAuth2 issuer states.
var oauth2Policy = provider.RefreshPolicy{RefreshAfterExpiry: true, RejectionRevokesAuthToken: true}

// engineWith returns an engine on the fixture's backend with issuer iss.
func (f *fixture) engineWith(iss provider.Issuer, optFns ...func(*Options)) *Engine {
	f.t.Helper()
	e, err := New(f.be, iss, testKey, append([]func(*Options){func(o *Options) {
		o.Clock, o.JournalDir, o.Metrics = f.clock, f.dir, f.metrics
		o.MinValidity, o.LeaseDuration, o.IssuerTimeout, o.ClockSkew = time.Minute, 10*time.Second, 2*time.Second, time.Second
		o.RetryBackoff, o.MaxRetryBackoff = 10*time.Millisecond, 50*time.Millisecond
	}}, optFns...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { e.Close() })
	return e
}

func (f *fixture) store(p provider.Pair, mod func(*provider.Record)) {
	r := &provider.Record{Pair: p}
	if mod != nil {
		mod(r)
	}
	f.be.put(testKey, r)
}

func TestRefreshAfterAccessTokenExpiry(t *testing.T) {
	f := newFixture(t)
	e := f.engineWith(policyIssuer{f.iss, oauth2Policy})
	f.clock.Advance(time.Hour + 2*time.Second) // the access token expired 2s ago
	p := mustGet(t, e)
	if p.Generation != 1 || p.AuthToken == f.first.AuthToken {
		t.Fatalf("got generation %d, want the refreshed generation 1", p.Generation)
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Errorf("issuer calls = %d, want 1", calls)
	}
	if rec := f.be.record(testKey); rec.Pair.IssuedAt.IsZero() {
		t.Error("the committed pair records no issuedAt")
	}
}

func TestKnownExpiredRefreshTokenNotPresented(t *testing.T) {
	f := newFixture(t)
	p := f.first
	p.RefreshValidUntil = f.clock.Now().Add(30 * time.Minute).Truncate(time.Second)
	f.store(p, nil)
	e := f.engineWith(policyIssuer{f.iss, oauth2Policy})
	f.clock.Advance(2 * time.Hour)
	_, err := e.Credential(ctx(t))
	var ee *ExpiredError
	if !errors.As(err, &ee) || ee.Token != "refresh token" || !ee.At.Equal(p.RefreshValidUntil) {
		t.Fatalf("err = %v, want an ExpiredError for the refresh token at %v", err, p.RefreshValidUntil)
	}
	if !errors.Is(err, provider.ErrLineageBroken) || !errors.Is(err, provider.ErrExpired) {
		t.Errorf("err %v does not wrap ErrLineageBroken and ErrExpired", err)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls = %d for a refresh token known to be expired, want 0", calls)
	}
}

func TestRejectionSaysSpentOrRevoked(t *testing.T) {
	f := newFixture(t)
	f.iss.script(rejected)
	e := f.engineWith(policyIssuer{f.iss, oauth2Policy})
	f.expire(f.first)
	_, err := e.Credential(ctx(t))
	if !errors.Is(err, provider.ErrLineageBroken) || !strings.Contains(err.Error(), "spent or revoked") {
		t.Fatalf("err = %v, want lineage broken, spent or revoked", err)
	}
}

func TestLifetimeMeasuredFromRecordNotProcess(t *testing.T) {
	for _, tc := range []struct {
		name     string
		issuedAt bool
		elapsed  time.Duration // when the engine first sees the pair
		want     time.Duration // refresh time before ValidUntil, Jitter 0
	}{
		// A one-hour opaque pair whose issue time is recorded: a window
		// of a quarter of its life, whenever a process first sees it.
		{"issuedAt/new", true, 0, 15 * time.Minute},
		{"issuedAt/late", true, 50 * time.Minute, 15 * time.Minute},
		// Unknown issue time: the floor alone, the same for everyone.
		{"unknown/new", false, 0, 5 * time.Minute},
		{"unknown/late", false, 56 * time.Minute, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.first
			if !tc.issuedAt {
				p.IssuedAt = time.Time{}
			}
			f.store(p, nil)
			f.clock.Advance(tc.elapsed)
			e := f.engineWith(f.iss, func(o *Options) { o.Jitter = 0 })
			mustGet(t, e)
			if got := p.ValidUntil.Sub(e.NextRefresh()); got != tc.want {
				t.Errorf("refresh %v before expiry, want %v", got, tc.want)
			}
		})
	}
}

func TestMinValidityNotBelowLifetimeSpendsNothing(t *testing.T) {
	f := newFixture(t)
	f.iss.lifetime = 30 * time.Second
	p := f.iss.mint()
	f.store(p, nil)
	e := f.engineWith(f.iss, func(o *Options) { o.MinValidity, o.RefreshFloor = time.Minute, 2*time.Minute })
	for range 4 {
		_, err := e.Credential(ctx(t))
		var le *LifetimeError
		if !errors.As(err, &le) || le.Lifetime != 30*time.Second || le.MinValidity != time.Minute {
			t.Fatalf("err = %v, want a LifetimeError naming 30s and 1m0s", err)
		}
		f.clock.Advance(5 * time.Second)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls = %d, want 0: no refresh can yield a usable pair", calls)
	}
}

func TestColdCallerServedWhileRefreshFails(t *testing.T) {
	f := newFixture(t)
	f.iss.script(notDelivered, notDelivered, notDelivered)
	f.clock.Advance(56 * time.Minute) // due for every instance, 4 minutes left
	e := f.engineWith(f.iss)
	if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
		t.Fatalf("a cold caller was not served the usable stored pair")
	}
}

func TestColdCallerNotBlockedByLiveLease(t *testing.T) {
	f := newFixture(t)
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "other-host", Expires: f.clock.Now().Add(time.Hour), Generation: 0}
	})
	f.clock.Advance(56 * time.Minute)
	e := f.engineWith(f.iss)
	start := time.Now()
	if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
		t.Fatal("a cold caller was not served the usable stored pair")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the caller waited %v for another holder's lease", d)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls = %d under another holder's live lease", calls)
	}
}

func TestReadOnlyBackendNeverSpends(t *testing.T) {
	f := newFixture(t)
	f.be.ro = true
	e := f.engineWith(f.iss)
	f.clock.Advance(56 * time.Minute) // due, still usable
	if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
		t.Fatal("a usable pair on a read-only backend was not served")
	}
	f.expire(f.first)
	_, err := e.Credential(ctx(t))
	var re *ReadOnlyError
	if !errors.As(err, &re) || !errors.Is(err, provider.ErrReadOnly) {
		t.Fatalf("err = %v, want a ReadOnlyError", err)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls = %d on a read-only backend, want 0", calls)
	}
}

func TestBrokenLineageServedPerIssuer(t *testing.T) {
	broken := func(r *provider.Record) { r.Broken = &provider.Broken{Generation: 0, Reason: "test"} }
	t.Run("momento", func(t *testing.T) {
		f := newFixture(t)
		f.store(f.first, broken)
		e := f.engineWith(f.iss)
		if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
			t.Fatal("the still-valid key of a broken lineage was not served")
		}
		f.clock.Advance(56 * time.Minute)
		if p := mustGet(t, e); p.AuthToken != f.first.AuthToken {
			t.Fatal("the still-valid key of a broken lineage was not served in its window")
		}
		f.expire(f.first)
		if _, err := e.Credential(ctx(t)); !errors.Is(err, provider.ErrLineageBroken) {
			t.Fatalf("err = %v once unusable, want ErrLineageBroken", err)
		}
		if calls, _ := f.iss.stats(); calls != 0 {
			t.Errorf("issuer calls = %d on a broken lineage", calls)
		}
	})
	t.Run("oauth2", func(t *testing.T) {
		f := newFixture(t)
		f.store(f.first, broken)
		e := f.engineWith(policyIssuer{f.iss, oauth2Policy})
		if _, err := e.Credential(ctx(t)); !errors.Is(err, provider.ErrLineageBroken) {
			t.Fatalf("err = %v, want ErrLineageBroken at once: the family's access tokens are revoked", err)
		}
	})
	t.Run("oauth2/warm", func(t *testing.T) {
		f := newFixture(t)
		e := f.engineWith(policyIssuer{f.iss, oauth2Policy})
		mustGet(t, e)
		f.iss.script(rejected)
		f.clock.Advance(56 * time.Minute) // due; the refresh is rejected
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := e.Credential(ctx(t))
			if errors.Is(err, provider.ErrLineageBroken) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the revoked access token is still served after the rejection (err %v)", err)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// TestSpreadAcrossUsableWindow checks the scheduling rule behind "no
// herd": engines of one process holding pairs minted in the same instant
// refresh evenly across the usable part of the window, never after the
// point where the pair would have less than MinValidity left.
func TestSpreadAcrossUsableWindow(t *testing.T) {
	for _, n := range []int{100, 1000} {
		f := newFixture(t)
		p := f.first
		start := p.ValidUntil.Add(-15 * time.Minute)
		usableEnd := p.ValidUntil.Add(-time.Minute - 2*CoarseSlack)
		span := usableEnd.Sub(start)
		const bins = 50
		var count [bins]int
		for range n {
			e, err := New(f.be, f.iss, testKey, func(o *Options) { o.Clock, o.JournalDir, o.MinValidity = f.clock, f.dir, time.Minute })
			if err != nil {
				t.Fatal(err)
			}
			at := e.schedule(p, true).refreshAt
			e.Close()
			if at.Before(start) || !at.Before(usableEnd) {
				t.Fatalf("refresh at %v, outside the usable window [%v, %v)", at, start, usableEnd)
			}
			count[int(at.Sub(start)*bins/span)]++
		}
		even := float64(n) / bins
		for i, c := range count {
			if float64(c) > 2*even {
				t.Errorf("%d engines: bin %d holds %d refreshes, over twice the even %.1f", n, i, c, even)
			}
		}
	}
}

func TestChangedFiresOnNewPair(t *testing.T) {
	f := newFixture(t)
	e := f.engineWith(f.iss)
	ch := e.Changed()
	mustGet(t, e) // the first pair is published
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire when the first pair was published")
	}
	ch = e.Changed()
	mustGet(t, e) // the same pair: no change
	select {
	case <-ch:
		t.Fatal("Changed fired without a new pair")
	default:
	}
	f.expire(f.first)
	mustGet(t, e)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after a refresh")
	}
}

func TestCoarseTickerStopsWithLastEngine(t *testing.T) {
	f := newFixture(t)
	var engines []*Engine
	for range 3 {
		e, err := New(f.be, f.iss, testKey, func(o *Options) { o.JournalDir = f.dir })
		if err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
	}
	coarse.mu.Lock()
	running := coarse.stop != nil
	coarse.mu.Unlock()
	if !running {
		t.Fatal("no coarse ticker while engines on the system clock are open")
	}
	for _, e := range engines {
		e.Close()
		e.Close() // twice: released once
	}
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	if coarse.users != 0 || coarse.stop != nil {
		t.Errorf("after the last Close: %d users, ticker running %v; want 0, false", coarse.users, coarse.stop != nil)
	}
}

// TestCloseCancelsUnclaimedWork: CloseNow stops a refresh that waits on
// another holder's lease at once, and reports an issuer call in flight
// (and waits for it) only while one is.
func TestCloseCancelsUnclaimedWork(t *testing.T) {
	f := newFixture(t)
	f.store(f.first, func(r *provider.Record) {
		r.Lease = &provider.Lease{Holder: "other", Expires: f.clock.Now().Add(time.Hour), Generation: 0}
	})
	f.expire(f.first)
	e := f.engineWith(f.iss)
	go e.Credential(ctx(t))
	time.Sleep(50 * time.Millisecond)
	if _, busy := e.IssuerCallInFlight(); busy {
		t.Fatal("an issuer call reported in flight while waiting on another holder's lease")
	}
	start := time.Now()
	e.CloseNow()
	if d := time.Since(start); d > time.Second {
		t.Errorf("CloseNow took %v to stop a lease wait", d)
	}

	g := newFixture(t)
	block := make(chan struct{})
	g.iss.block = block
	g.expire(g.first)
	e2 := g.engineWith(g.iss)
	go e2.Credential(ctx(t))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if dl, busy := e2.IssuerCallInFlight(); busy {
			if time.Until(dl) <= 0 {
				t.Errorf("issuer call deadline %v already past", dl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the issuer call never showed as in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(block)
	e2.CloseNow()
	if _, busy := e2.IssuerCallInFlight(); busy {
		t.Error("an issuer call still reported in flight after Close")
	}
	if rec := g.be.record(testKey); rec.Pair.Generation != 1 {
		t.Errorf("stored generation %d after Close waited for the claimed refresh, want 1", rec.Pair.Generation)
	}
}
