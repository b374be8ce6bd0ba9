package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
