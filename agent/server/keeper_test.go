package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// countingProvider counts Credential calls to prove the keeper sleeps.
type countingProvider struct {
	provider.CredentialProvider
	calls chan struct{}
}

func (c *countingProvider) Credential(ctx context.Context) (provider.Pair, error) {
	select {
	case c.calls <- struct{}{}:
	default:
	}
	return c.CredentialProvider.Credential(ctx)
}

// NextRefresh passes the engine's schedule through, as the agent needs it.
func (c *countingProvider) NextRefresh() time.Time {
	return c.CredentialProvider.(server.Scheduler).NextRefresh()
}

// TestKeeperRefreshesAhead runs a real engine on the file backend against
// the dev issuer with 4-second pairs and no callers: the keeper alone must
// advance the generation once per lifetime, every refresh committed, no
// refresh token presented twice, and without polling a fresh pair.
func TestKeeperRefreshesAhead(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iss, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	first, err := iss.Mint(provider.GenerateRequest{Lifetime: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "cred.json")
	data, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	backend, err := file.New()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = iss.Addr(), true })
	if err != nil {
		t.Fatal(err)
	}
	m := server.NewMetrics()
	eng, err := refresh.New(backend, issuer, key, func(o *refresh.Options) {
		o.JournalDir = filepath.Join(dir, "journal")
		o.RefreshFraction, o.RefreshFloor, o.MinValidity = 0.25, 2*time.Second, 500*time.Millisecond
		o.Metrics = m.Engine("exp")
	})
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProvider{CredentialProvider: eng, calls: make(chan struct{}, 1000)}
	ts := startServer(t, []server.Profile{{Name: "exp", Provider: cp, Keep: true}}, func(o *server.Options) { o.Metrics = m })

	const run = 9 * time.Second
	time.Sleep(run)
	st, err := ts.client().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts.stop(t)
	if err := eng.Close(); err != nil {
		t.Fatalf("engine Close: %v", err)
	}
	entry, err := backend.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		t.Fatal(err)
	}
	stats := iss.Stats()
	gen := rec.Pair.Generation
	t.Logf("after %v: generation %d, issuer %+v, keeper calls %d, status %+v", run, gen, stats, len(cp.calls), st.Profiles)
	// Pairs live 3-4s (whole seconds) and are refreshed 2s before expiry.
	if gen < 3 {
		t.Errorf("generation %d after %v of 4s pairs: the keeper did not keep the credential fresh", gen, run)
	}
	if stats.Refreshes != gen || stats.RefreshAttempts != gen || stats.Rejected != 0 || stats.Reuses != 0 || stats.FamiliesRevoked != 0 {
		t.Errorf("issuer stats %+v for generation %d: want one accepted refresh per generation and no reuse", stats, gen)
	}
	if st.Profiles[0].Generation+1 < gen || st.Profiles[0].LastError != "" {
		t.Errorf("status %+v lags the stored generation %d", st.Profiles[0], gen)
	}
	// A few calls per generation (wake, then the short looks until the
	// background refresh lands), not a poll of the fresh pair.
	if calls := uint64(len(cp.calls)); calls > 6*(gen+1) {
		t.Errorf("the keeper called Credential %d times for %d generations: it is polling", calls, gen)
	}
	var sb strings.Builder
	_ = m.WriteText(&sb)
	samples := parseProm(t, sb.String())
	if v, _ := promValue(samples, "credhelper_refresh_events_total", "profile", "exp", "event", "committed"); uint64(v) != gen {
		t.Errorf("committed events = %v, want %d", v, gen)
	}
}

// slowRefresher is a provider whose pair is due at once; a Credential call
// while due starts a 50 ms refresh in the background, as an engine does,
// and reports the end to the server.
type slowRefresher struct {
	name           string
	srv            *atomic.Pointer[server.Server]
	inflight, peak *atomic.Int64

	mu         sync.Mutex
	gen        uint64
	refreshing bool
}

func (r *slowRefresher) Credential(context.Context) (provider.Pair, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen == 0 && !r.refreshing {
		r.refreshing = true
		n := r.inflight.Add(1)
		for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
		}
		time.AfterFunc(50*time.Millisecond, func() {
			r.mu.Lock()
			r.gen, r.refreshing = 1, false
			r.mu.Unlock()
			r.inflight.Add(-1)
			if s := r.srv.Load(); s != nil {
				s.Notify(r.name)
			}
		})
	}
	return testPair(r.gen, time.Hour), nil
}

func (r *slowRefresher) NextRefresh() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen == 0 {
		return time.Now().Add(-time.Second) // due
	}
	return time.Now().Add(time.Hour)
}

// TestKeepersBoundRefreshes: with 60 profiles due at once and 4 workers,
// keepers never have more than 4 refreshes running, and every profile is
// refreshed.
func TestKeepersBoundRefreshes(t *testing.T) {
	var (
		srv            atomic.Pointer[server.Server]
		inflight, peak atomic.Int64
		profs          []*slowRefresher
		profiles       []server.Profile
	)
	for i := range 60 {
		r := &slowRefresher{name: fmt.Sprintf("p%02d", i), srv: &srv, inflight: &inflight, peak: &peak}
		profs = append(profs, r)
		profiles = append(profiles, server.Profile{Name: r.name, Provider: r, Keep: true})
	}
	ts := startServer(t, profiles, func(o *server.Options) { o.Workers = 4 })
	srv.Store(ts.srv)
	defer ts.stop(t)
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range profs {
		for {
			r.mu.Lock()
			done := r.gen == 1
			r.mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not refreshed in 20 s", r.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p := peak.Load(); p > 4 || p < 2 {
		t.Errorf("at most %d refreshes ran at once, want between 2 and 4 (the workers)", p)
	}
}

// announcingProvider is due at once; a Credential call while due starts a
// refresh that publishes generation 1 after publishAfter and closes the
// channel Changed returned, as an engine does.
type announcingProvider struct {
	publishAfter time.Duration
	calls        atomic.Int64

	mu         sync.Mutex
	gen        uint64
	refreshing bool
	changed    chan struct{}
}

func (a *announcingProvider) Credential(context.Context) (provider.Pair, error) {
	a.calls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen == 0 && !a.refreshing {
		a.refreshing = true
		time.AfterFunc(a.publishAfter, func() {
			a.mu.Lock()
			a.gen, a.refreshing = 1, false
			old := a.changed
			a.changed = make(chan struct{})
			a.mu.Unlock()
			close(old)
		})
	}
	return testPair(a.gen, time.Hour), nil
}

func (a *announcingProvider) NextRefresh() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen == 0 {
		return time.Now().Add(-time.Second) // due
	}
	return time.Now().Add(time.Hour)
}

func (a *announcingProvider) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// TestKeeperWaitsOnChanged: while the refresh it started runs, a keeper
// whose provider announces new pairs waits for the announcement instead of
// looking again (a provider without it is looked at after 0.25, 0.75 and
// 1.75 s), and takes up the new pair as soon as it is published.
func TestKeeperWaitsOnChanged(t *testing.T) {
	ap := &announcingProvider{publishAfter: 1200 * time.Millisecond, changed: make(chan struct{})}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: ap, Keep: true}})
	defer ts.stop(t)
	start := time.Now()
	var took time.Duration
	for {
		st, err := ts.client().Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Profiles) == 1 && st.Profiles[0].Generation == 1 {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 4*time.Second {
			t.Fatalf("generation 1, published after %v, not taken up after %v: status %+v", ap.publishAfter, time.Since(start), st.Profiles)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if calls := ap.calls.Load(); calls != 2 {
		t.Errorf("the keeper called Credential %d times, want 2 (the call that started the refresh, and one when the new pair was announced)", calls)
	}
	t.Logf("new pair taken up %v after start (published after %v)", took, ap.publishAfter)
}

// TestSettledAfterARound: once the refresh a keeper started has landed
// and no other runs, Settled is called (the agent returns the round's
// garbage to the system there), once, and not while a refresh runs.
func TestSettledAfterARound(t *testing.T) {
	var settled atomic.Int32
	var landed atomic.Int64 // when generation 1 was taken up, UnixNano
	ap := &announcingProvider{publishAfter: 1200 * time.Millisecond, changed: make(chan struct{})}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: ap, Keep: true}}, func(o *server.Options) {
		o.Settled = func() {
			if landed.Load() == 0 {
				t.Errorf("Settled called while the round's refresh ran")
			}
			settled.Add(1)
		}
	})
	defer ts.stop(t)
	deadline := time.Now().Add(10 * time.Second)
	for landed.Load() == 0 && time.Now().Before(deadline) {
		if st, err := ts.client().Status(context.Background()); err == nil && len(st.Profiles) == 1 && st.Profiles[0].Generation == 1 {
			landed.Store(time.Now().UnixNano())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if landed.Load() == 0 {
		t.Fatal("generation 1 never taken up")
	}
	for settled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := settled.Load(); n != 1 {
		t.Fatalf("Settled called %d times after the round, want 1", n)
	}
	if d := time.Since(time.Unix(0, landed.Load())); d < time.Second {
		t.Errorf("Settled %v after the round ended, want about 2s of quiet first", d)
	}
}

// TestKeeperLogsARepeatedFailureOnce: a keeper whose provider keeps
// failing the same way warns once, not at every retry; a success says so,
// and a new failure warns again.
func TestKeeperLogsARepeatedFailureOnce(t *testing.T) {
	fp := &fakeProvider{err: provider.Transient(errors.New("issuer unreachable: connection refused"))}
	ts, logs := startSinkServer(t, fp, time.Second, nil)
	defer ts.stop(t)
	deadline := time.Now().Add(15 * time.Second)
	for fp.calls.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := fp.calls.Load(); n < 4 {
		t.Fatalf("%d calls, want at least 4 retries", n)
	}
	warned := func() int {
		return strings.Count(logs.String(), `"level":"WARN","msg":"agent: keeping the credential fresh failed"`)
	}
	if n := warned(); n != 1 {
		t.Errorf("%d warnings for %d identical failures, want 1:\n%s", n, fp.calls.Load(), logs.String())
	}
	fp.set(testPair(1, time.Hour), nil)
	ts.srv.Notify("p")
	for !strings.Contains(logs.String(), "the credential is fresh again") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "the credential is fresh again") {
		t.Errorf("no recovery line:\n%s", logs.String())
	}
}
