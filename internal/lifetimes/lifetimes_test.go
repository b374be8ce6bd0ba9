package lifetimes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// Case 1: an OAuth2 pair whose access token expired two seconds ago and
// whose refresh token lives on is refreshed, as RFC 6749 section 6 has it.
func TestOAuth2ExpiredAccessTokenIsRefreshed(t *testing.T) {
	w := newWorld(t, func(o *dev.Options) { o.RefreshTTL = 24 * time.Hour })
	p := w.mintAgo(time.Hour, time.Hour+2*time.Second)
	be := w.store("expired", &provider.Record{Pair: p})
	r := w.credhelper(append([]string{"get", "--backend", be}, w.oauth2Flags()...)...).want(t, "get", 0).noSecrets(t, "get", p)
	rec := w.record(be)
	r.wantOut(t, "get", rec.Pair.AuthToken+"\n")
	now := time.Now()
	if rec.Pair.Generation != 1 || rec.Pair.AuthToken == p.AuthToken {
		t.Errorf("stored generation %d (new token: %v), want generation 1 with a new token", rec.Pair.Generation, rec.Pair.AuthToken != p.AuthToken)
	}
	if !near(rec.Pair.ValidUntil, now.Add(time.Hour), 10*time.Second) || !near(rec.Pair.IssuedAt, now, 10*time.Second) || !near(rec.Pair.RefreshValidUntil, now.Add(24*time.Hour), 10*time.Second) {
		t.Errorf("stored validUntil %v, issuedAt %v, refreshValidUntil %v; want now+1h, now, now+24h",
			rec.Pair.ValidUntil, rec.Pair.IssuedAt, rec.Pair.RefreshValidUntil)
	}
	raw := w.rawRecord(be)
	for _, f := range []string{"apiKey", "refreshToken", "validUntil", "refreshValidUntil", "issuedAt", "generation"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("stored record lacks %q: %v", f, keys(raw))
		}
	}
	if st := w.srv.Stats(); st.Refreshes != 1 || st.RefreshAttempts != 1 || st.Reuses != 0 {
		t.Errorf("issuer: %d refreshes of %d attempts, %d reuses; want 1, 1, 0", st.Refreshes, st.RefreshAttempts, st.Reuses)
	}
}

// An expired Momento key can no longer be refreshed: nothing is presented.
func TestMomentoExpiredKeyIsNotPresented(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(time.Hour, time.Hour+2*time.Second)
	be := w.store("expired", &provider.Record{Pair: p})
	w.credhelper(append([]string{"get", "--backend", be}, w.momentoFlags()...)...).want(t, "get", 1).
		wantOut(t, "get", "").wantErr(t, "get", "auth token", "expired at", "credhelper generate").noSecrets(t, "get", p)
	if st := w.srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("issuer saw %d refresh attempts of an expired key, want 0", st.RefreshAttempts)
	}
}

// A refresh token known to have expired is not presented, and the error
// says which token expired when.
func TestKnownExpiredRefreshTokenIsNotPresented(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(time.Hour, 2*time.Hour)
	p.RefreshValidUntil = time.Now().Add(-time.Minute).Truncate(time.Second)
	be := w.store("rt-expired", &provider.Record{Pair: p})
	w.credhelper(append([]string{"get", "--backend", be}, w.oauth2Flags()...)...).want(t, "get", 1).
		wantErr(t, "get", "refresh token", "expired at "+p.RefreshValidUntil.UTC().Format(time.RFC3339), "credhelper generate")
	if st := w.srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("issuer saw %d refresh attempts, want 0", st.RefreshAttempts)
	}
}

// Case 2: a response without expires_in (and an opaque access token, so no
// exp either) gets the default lifetime, never "never expires".
func TestMissingExpiresInGetsDefaultLifetime(t *testing.T) {
	w := newWorld(t, func(o *dev.Options) { o.OmitExpiresIn, o.OpaqueTokens = true, true })
	p := w.mintAgo(time.Hour, 0)
	be := w.store("noexp", &provider.Record{Pair: p})
	args := append([]string{"refresh", "--force", "--backend", be}, w.oauth2Flags()...)
	r := w.credhelper(args...).want(t, "refresh", 0)
	r.wantErr(t, "refresh", "no expires_in", "profile=default", "default_lifetime=1h0m0s")
	rec := w.record(be)
	if rec.Pair.Never() || !near(rec.Pair.ValidUntil, time.Now().Add(time.Hour), 10*time.Second) || !strings.HasPrefix(rec.Pair.AuthToken, "dev-opaque-") {
		t.Fatalf("stored validUntil %v (never %v), want now+1h for an opaque token", rec.Pair.ValidUntil, rec.Pair.Never())
	}
	w.credhelper(append(args, "--default-lifetime", "10m")...).want(t, "refresh --default-lifetime 10m", 0)
	rec = w.record(be)
	if !near(rec.Pair.ValidUntil, time.Now().Add(10*time.Minute), 10*time.Second) {
		t.Fatalf("stored validUntil %v with --default-lifetime 10m, want now+10m", rec.Pair.ValidUntil)
	}
	st := w.credhelper("status", "--backend", be).want(t, "status", 0)
	if strings.Contains(st.stdout, "never") || strings.Contains(st.stdout, "forever") {
		t.Errorf("status says never: %s", st.stdout)
	}
	k := w.credhelper("kubectl", "--backend", be).want(t, "kubectl", 0)
	var ec struct {
		Status struct {
			Token               string `json:"token"`
			ExpirationTimestamp string `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(k.stdout), &ec); err != nil || ec.Status.ExpirationTimestamp == "" || ec.Status.Token != rec.Pair.AuthToken {
		t.Errorf("kubectl output %s: want the token and an expirationTimestamp (%v)", k.stdout, err)
	}
}

// Case 3: the window of an opaque token is sized from the recorded issue
// time, so a one-shot get refreshes a pair inside refresh_floor (5m) of a
// 10-minute lifetime whatever process first sees it.
func TestOpaqueTokenWindowFromRecord(t *testing.T) {
	w := newWorld(t, func(o *dev.Options) { o.OpaqueTokens = true })
	const lifetime = 10 * time.Minute
	for _, tc := range []struct {
		left      time.Duration
		refreshed bool
	}{
		{310 * time.Second, false},
		{290 * time.Second, true},
		{200 * time.Second, true},
		{100 * time.Second, true},
		{66 * time.Second, true},
	} {
		minted := w.mintAgo(lifetime, lifetime-tc.left)
		now := time.Now().Truncate(time.Second)
		p := provider.Pair{AuthToken: "opaque-access-" + tc.left.String(), RefreshToken: minted.RefreshToken,
			ValidUntil: now.Add(tc.left), IssuedAt: now.Add(tc.left - lifetime)}
		be := w.store("opaque-"+tc.left.String(), &provider.Record{Pair: p})
		before := w.srv.Stats().Refreshes
		r := w.credhelper(append([]string{"get", "--backend", be}, w.oauth2Flags()...)...).want(t, tc.left.String(), 0).
			wantOut(t, tc.left.String(), p.AuthToken+"\n") // usable: served at once
		if r.took > 3*time.Second {
			t.Errorf("%v left: get took %v; a usable pair is served without waiting for its refresh", tc.left, r.took)
		}
		want := uint64(0)
		if tc.refreshed {
			want = 1
		}
		rec := w.waitGeneration(be, want)
		got := w.srv.Stats().Refreshes - before
		if tc.refreshed && (rec.Pair.Generation != 1 || got != 1) {
			t.Errorf("%v left of %v: stored generation %d after %d refreshes, want 1 and 1", tc.left, lifetime, rec.Pair.Generation, got)
		}
		if !tc.refreshed && (rec.Pair.Generation != 0 || got != 0) {
			t.Errorf("%v left of %v (outside the 5m window): generation %d after %d refreshes, want 0 and 0", tc.left, lifetime, rec.Pair.Generation, got)
		}
	}
}

// Case 4: 30-second pairs with the default min_validity (1m): no get
// spends a refresh token, each says which setting to change.
func TestMinValidityAboveLifetimeSpendsNothing(t *testing.T) {
	w := newWorld(t)
	p, err := w.srv.Mint(provider.GenerateRequest{Lifetime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	be := "file:" + filepath.Join(w.dir, "short.json")
	in, _ := (&provider.Record{Pair: p}).Encode()
	w.run("credhelper", nil, string(in), "put", "--backend", be).want(t, "put", 0)
	for i := range 4 {
		w.credhelper(append([]string{"get", "--backend", be}, w.momentoFlags()...)...).want(t, "get", 1).
			wantOut(t, "get", "").wantErr(t, "get", "live 30s", "1m0s", "--min-validity")
		_ = i
	}
	if st := w.srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("issuer saw %d refresh attempts, want 0", st.RefreshAttempts)
	}
	if rec := w.record(be); rec.Pair.Generation != 0 || rec.Pair.AuthToken != p.AuthToken {
		t.Errorf("stored pair changed: generation %d", rec.Pair.Generation)
	}
}

// Case 5a: with 3m18s left and the issuer down, every face is served the
// stored pair at once, and the failure is logged once.
func TestColdCallersServedWhileIssuerDown(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(10*time.Minute, 6*time.Minute+42*time.Second)
	be := w.store("down", &provider.Record{Pair: p})
	cfg := filepath.Join(w.dir, "config", "credhelper", "config.toml")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`[profiles.default]
backend = "`+be+`"
issuer = "dev:127.0.0.1:1"
[profiles.default.git]
host = "git.example.com"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	w.credhelper("get").want(t, "get", 0).wantOut(t, "get", p.AuthToken+"\n").noSecrets(t, "get", p)
	// The refresh runs in a background refresher, which fails (nothing
	// listens) and records why; the next command says so once.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.refresherLog(), "background refresh failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The refresher records its outcome before it logs the failure.
	r := w.credhelper("get").want(t, "get again", 0).wantOut(t, "get again", p.AuthToken+"\n")
	if n := strings.Count(r.stderr, "serving the current pair"); n != 1 {
		t.Errorf("the next get reported the failed refresh %d times, want once: %s", n, r.stderr)
	}
	k := w.credhelper("kubectl").want(t, "kubectl", 0)
	if !strings.Contains(k.stdout, `"token":"`+p.AuthToken+`"`) {
		t.Errorf("kubectl output %s lacks the stored token", k.stdout)
	}
	g := w.run("git-credential-credhelper", nil, "protocol=https\nhost=git.example.com\n\n", "get").want(t, "git get", 0)
	if !strings.Contains(g.stdout, "password="+p.AuthToken+"\n") {
		t.Errorf("git get printed %q, want the stored token as password", g.stdout)
	}
	// Every background refresher those commands started has finished
	// (the last may not even have claimed yet).
	if !testexec.WaitDetached(w.dir, 20*time.Second) {
		t.Error("background refreshers still running after 20 s")
	}
	if rec := w.record(be); rec.Pair.Generation != 0 || rec.Lease != nil {
		t.Errorf("stored generation %d, lease %v: want generation 0 and the unspent claim released", rec.Pair.Generation, rec.Lease)
	}
}

// Case 5b: with 17 s left and another host holding a live lease, a caller
// whose min_validity the pair still meets is answered at once.
func TestColdCallerNotBlockedByAnotherHostsLease(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(10*time.Minute, 10*time.Minute-17*time.Second)
	be := w.store("leased", &provider.Record{Pair: p, Lease: &provider.Lease{Holder: "other-host-1-ab", Expires: time.Now().Add(time.Minute), Generation: 0}})
	r := w.credhelper(append([]string{"get", "--backend", be, "--min-validity", "10s", "--refresh-floor", "1m"}, w.momentoFlags()...)...).
		want(t, "get", 0).wantOut(t, "get", p.AuthToken+"\n")
	if r.took > 3*time.Second {
		t.Errorf("get took %v under another host's lease, want at once", r.took)
	}
	if st := w.srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("issuer saw %d refresh attempts under another holder's lease", st.RefreshAttempts)
	}
}

// Case 6: a secret read from an environment variable has one trailing
// newline trimmed; other control characters are refused before anything is
// sent, naming the variable and never the value.
func TestSessionTokenTrailingNewline(t *testing.T) {
	w := newWorld(t)
	be := "file:" + filepath.Join(w.dir, "gen.json")
	w.run("credhelper", []string{"MOMENTO_SESSION_TOKEN=" + dev.DefaultSessionToken + "\n"}, "",
		"generate", "--backend", be, "--issuer", "dev:"+w.srv.Addr(), "--session-token-env", "MOMENTO_SESSION_TOKEN", "--ttl", "1h").want(t, "generate", 0)
	if st := w.srv.Stats(); st.Generates != 1 {
		t.Fatalf("issuer generated %d pairs, want 1", st.Generates)
	}
	if rec := w.record(be); rec.Pair.IssuedAt.IsZero() || rec.Pair.Never() {
		t.Errorf("generated record: issuedAt %v, never %v", rec.Pair.IssuedAt, rec.Pair.Never())
	}
	bad := "dev-session\x01token"
	r := w.run("credhelper", []string{"MOMENTO_SESSION_TOKEN=" + bad}, "",
		"generate", "--backend", be, "--issuer", "dev:"+w.srv.Addr(), "--session-token-env", "MOMENTO_SESSION_TOKEN", "--ttl", "1h").
		want(t, "generate (control character)", 2).wantErr(t, "generate", "$MOMENTO_SESSION_TOKEN", "control character")
	if strings.Contains(r.stderr, "dev-session") || strings.Contains(r.stderr, "may have been processed") {
		t.Errorf("stderr %q shows the value or claims the request may have been sent", r.stderr)
	}
	if st := w.srv.Stats(); st.Generates != 1 {
		t.Errorf("issuer generated %d pairs, want still 1", st.Generates)
	}
}

// Case 7: a read-only source (env:) is served while usable and never
// refreshed by a one-shot caller; only the agent or exec may opt into
// refreshing in memory.
func TestReadOnlySourceNeverSpends(t *testing.T) {
	w := newWorld(t)
	due := w.mintAgo(10*time.Minute, 8*time.Minute) // 2m left: due, usable
	dueJSON, _ := (&provider.Record{Pair: due}).Encode()
	for i := range 2 {
		w.run("credhelper", []string{"APP=" + string(dueJSON)}, "", append([]string{"get", "--backend", "env:APP"}, w.momentoFlags()...)...).
			want(t, "get (due)", 0).wantOut(t, "get (due)", due.AuthToken+"\n")
		_ = i
	}
	spent := w.mintAgo(10*time.Minute, 9*time.Minute+30*time.Second) // 30s left: unusable
	spentJSON, _ := (&provider.Record{Pair: spent}).Encode()
	env := []string{"APP=" + string(spentJSON)}
	for _, extra := range [][]string{nil, {"--unsafe-refresh-in-memory"}} {
		w.run("credhelper", env, "", append(append([]string{"get", "--backend", "env:APP"}, extra...), w.momentoFlags()...)...).
			want(t, "get (unusable)", 1).wantErr(t, "get", "read-only", "credhelper agent").noSecrets(t, "get", spent)
	}
	if st := w.srv.Stats(); st.RefreshAttempts != 0 || st.Reuses != 0 {
		t.Fatalf("issuer: %d refresh attempts, %d reuses from a read-only source, want 0, 0", st.RefreshAttempts, st.Reuses)
	}
	// exec is a single long-lived holder: with the opt-in it refreshes once
	// in memory and runs the command with the new token.
	r := w.run("credhelper", env, "", append([]string{"exec", "--backend", "env:APP", "--unsafe-refresh-in-memory"}, append(w.momentoFlags(), "--", "printenv", "MOMENTO_API_KEY")...)...).
		want(t, "exec --unsafe-refresh-in-memory", 0).wantErr(t, "exec", "memory only")
	if tok := strings.TrimSpace(r.stdout); tok == "" || tok == spent.AuthToken {
		t.Errorf("exec ran the command with the old token or none")
	}
	if st := w.srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("issuer: %d refreshes, %d reuses; want 1, 0", st.Refreshes, st.Reuses)
	}
}

// A broken lineage is served according to the issuer: a Momento key stays
// usable until it expires; at an OAuth2 server the family's access tokens
// were revoked, so the error comes at once.
func TestBrokenLineagePerIssuer(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(time.Hour, 0)
	broken := &provider.Broken{Generation: 0, Reason: "the issuer rejected the refresh token: spent or revoked"}
	be := w.store("broken", &provider.Record{Pair: p, Broken: broken})
	w.credhelper(append([]string{"get", "--backend", be}, w.momentoFlags()...)...).want(t, "get (momento)", 0).wantOut(t, "get", p.AuthToken+"\n")
	w.credhelper(append([]string{"get", "--backend", be}, w.oauth2Flags()...)...).want(t, "get (oauth2)", 1).
		wantOut(t, "get (oauth2)", "").wantErr(t, "get (oauth2)", "lineage", "broken", "credhelper generate")
	if st := w.srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("issuer saw %d refresh attempts on a broken lineage", st.RefreshAttempts)
	}
}

// The holder's maybe-delivered retry with the same refresh token succeeds
// at an issuer with a reuse grace period (Auth0, Okta): no lineage lost.
func TestMaybeDeliveredRetryWithinReuseGrace(t *testing.T) {
	w := newWorld(t, func(o *dev.Options) { o.ReuseGrace = 30 * time.Second })
	p := w.mintAgo(10*time.Minute, 9*time.Minute+30*time.Second)
	be := w.store("grace", &provider.Record{Pair: p})
	w.srv.FailNextRefreshes(1, dev.FaultLoseResponse)
	r := w.credhelper(append([]string{"get", "--backend", be}, w.oauth2Flags()...)...).want(t, "get", 0)
	rec := w.record(be)
	r.wantOut(t, "get", rec.Pair.AuthToken+"\n")
	st := w.srv.Stats()
	if rec.Pair.Generation != 1 || st.GraceReuses != 1 || st.Reuses != 0 || st.FamiliesRevoked != 0 {
		t.Errorf("generation %d; issuer grace reuses %d, reuses %d, revoked %d; want 1, 1, 0, 0", rec.Pair.Generation, st.GraceReuses, st.Reuses, st.FamiliesRevoked)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// writeConfig writes the world's config file.
func (w *world) writeConfig(body string) {
	w.t.Helper()
	cfg := filepath.Join(w.dir, "config", "credhelper", "config.toml")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// A broken lineage heals itself when the profile has a bootstrap: one
// generate from the session token, committed as the next generation.
func TestHealFromSessionToken(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(time.Hour, 0)
	be := w.store("heal", &provider.Record{Pair: p, Broken: &provider.Broken{Generation: 0, Reason: "the issuer rejected the refresh token: spent or revoked"}})
	w.writeConfig(`[profiles.default]
backend = "` + be + `"
issuer = "dev:` + w.srv.Addr() + `"
[profiles.default.bootstrap]
session_token_env = "BOOT_TOKEN"
ttl = "2h"
`)
	r := w.run("credhelper", []string{"BOOT_TOKEN=" + dev.DefaultSessionToken + "\n"}, "", "get").want(t, "get", 0)
	rec := w.waitGeneration(be, 2)
	if rec.Pair.Generation != 2 || rec.Broken != nil || rec.Healed == nil || rec.Healed.Generation != 0 {
		t.Fatalf("stored generation %d, broken %v, healed %+v; want generation 2 (N+2) healed from 0", rec.Pair.Generation, rec.Broken, rec.Healed)
	}
	if !near(rec.Pair.ValidUntil, time.Now().Add(2*time.Hour), 10*time.Second) {
		t.Errorf("healed pair valid until %v, want now+2h (the bootstrap ttl)", rec.Pair.ValidUntil)
	}
	// The still-valid key of the broken lineage is served at once; the heal
	// runs in a background refresher.
	r.wantOut(t, "get", p.AuthToken+"\n")
	if !strings.Contains(w.refresherLog(), "re-bootstrapping") {
		t.Errorf("the refresher did not log the heal: %s", w.refresherLog())
	}
	if st := w.srv.Stats(); st.Generates != 2 || st.RefreshAttempts != 0 {
		t.Errorf("issuer: %d generates, %d refresh attempts; want 2 (mint + heal), 0", st.Generates, st.RefreshAttempts)
	}
	w.credhelper("get").want(t, "get after heal", 0).wantOut(t, "get after heal", rec.Pair.AuthToken+"\n")
}

// Any issuer heals from a command that prints a record; a failing command
// is reported and backed off, never retried in a storm.
func TestHealFromCommand(t *testing.T) {
	w := newWorld(t)
	p := w.mintAgo(10*time.Minute, 10*time.Minute-20*time.Second) // 20s left: unusable
	be := w.store("heal", &provider.Record{Pair: p, Broken: &provider.Broken{Generation: 0, Reason: "test"}})
	fresh := w.mintAgo(time.Hour, 0)
	freshJSON, _ := (&provider.Record{Pair: fresh}).Encode()
	pairFile := filepath.Join(w.dir, "fresh.json")
	if err := os.WriteFile(pairFile, freshJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(`[profiles.default]
backend = "` + be + `"
issuer = "oauth2:` + w.srv.TokenURL() + `"
client_id = "` + dev.DefaultClientID + `"
client_secret_env = "CREDHELPER_CLIENT_SECRET"
[profiles.default.bootstrap]
command = ["sh", "-c", "exit 3"]
`)
	w.credhelper("get").want(t, "get (failing bootstrap)", 1).wantErr(t, "get", "re-bootstrap failed", "exit status 3")
	rec := w.record(be)
	if rec.Broken == nil || rec.Broken.HealFailures != 1 || rec.Broken.HealRetryAfter.IsZero() {
		t.Fatalf("broken mark %+v: want one recorded failure and a retry time", rec.Broken)
	}
	w.credhelper("get").want(t, "get (backing off)", 1).wantErr(t, "get", "next attempt after")
	if rec2 := w.record(be); rec2.Broken.HealFailures != 1 {
		t.Fatalf("a second bootstrap ran during the backoff (%d failures)", rec2.Broken.HealFailures)
	}
	// A person fixes the command and clears the backoff by storing the
	// broken record again without it.
	w.store("heal", &provider.Record{Pair: p, Broken: &provider.Broken{Generation: 0, Reason: "test"}})
	w.writeConfig(`[profiles.default]
backend = "` + be + `"
issuer = "oauth2:` + w.srv.TokenURL() + `"
client_id = "` + dev.DefaultClientID + `"
client_secret_env = "CREDHELPER_CLIENT_SECRET"
[profiles.default.bootstrap]
command = ["cat", "` + pairFile + `"]
`)
	r := w.credhelper("get").want(t, "get (healing)", 0).noSecrets(t, "get", fresh)
	r.wantOut(t, "get", fresh.AuthToken+"\n")
	if rec := w.record(be); rec.Pair.Generation != 2 || rec.Healed == nil {
		t.Errorf("stored generation %d, healed %v; want 2, healed", rec.Pair.Generation, rec.Healed)
	}
}
