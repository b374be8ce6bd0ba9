package server_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// fixture is a config with two profiles on the file backend, "never" (a
// pair that never expires) and "exp" (4-second pairs refreshed by the dev
// issuer running in this process), and the environment for the binary.
type fixture struct {
	dir, run, cfg string
	never, other  provider.Pair
	iss           *dev.Server
	env           []string
}

func newFixture(t testing.TB, issOpts ...func(*dev.Options)) *fixture {
	t.Helper()
	// Build first: linking can take seconds on a busy machine, longer than
	// the 4-second pair minted below lives.
	credhelperBin(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	iss, err := dev.Listen(ctx, "127.0.0.1:0", issOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	f := &fixture{dir: t.TempDir(), run: socketDir(t), iss: iss}
	f.cfg = filepath.Join(f.dir, "config.toml")
	mint := func(req provider.GenerateRequest) provider.Pair {
		p, err := iss.Mint(req)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.never = mint(provider.GenerateRequest{Never: true})
	f.other = mint(provider.GenerateRequest{Never: true})
	f.store(t, "never.json", f.never)
	f.store(t, "other.json", f.other)
	f.store(t, "exp.json", mint(provider.GenerateRequest{Lifetime: 4 * time.Second}))
	cfg := fmt.Sprintf(`
[profiles.never]
backend = "file:%[1]s/never.json"
journal_dir = "%[1]s/journal"

[profiles.exp]
backend = "file:%[1]s/exp.json"
issuer = "dev:%[2]s"
refresh_floor = "2s"
min_validity = "500ms"
journal_dir = "%[1]s/journal"
`, f.dir, iss.Addr())
	if err := os.WriteFile(f.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env = append(baseEnv(), "XDG_RUNTIME_DIR="+f.run, "CREDHELPER_CONFIG="+f.cfg, "XDG_STATE_HOME="+filepath.Join(f.dir, "state"))
	return f
}

func (f *fixture) store(t testing.TB, name string, p provider.Pair) {
	t.Helper()
	data, err := (&provider.Record{Pair: p}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) socket() string { return filepath.Join(f.run, "credhelper", "agent.sock") }

func (f *fixture) stored(t testing.TB, name string) *provider.Record {
	t.Helper()
	b, err := file.New()
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Load(context.Background(), filepath.Join(f.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(e.Value)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func scrape(t *testing.T, url string) []promSample {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return parseProm(t, string(body))
}

// TestAgentEndToEnd runs `credhelper agent` as a real process and drives it
// with `credhelper get` processes.
func TestAgentEndToEnd(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	ap := startAgent(t, f.env, "--metrics-addr", "127.0.0.1:0")
	metricsLine := ap.waitLog(t, "agent: metrics at ", 5*time.Second)
	metricsURL := strings.TrimPrefix(metricsLine["msg"].(string), "agent: metrics at ")
	get := func(args ...string) (string, string, int) {
		out, errs, code := runCLI(t, f.env, append([]string{"get"}, args...)...)
		return strings.TrimSpace(out), errs, code
	}
	gets := func() float64 {
		v, _ := promValue(scrape(t, metricsURL), "credhelper_agent_requests_total", "op", "get", "result", "ok")
		return v
	}

	t.Run("socket modes", func(t *testing.T) {
		for p, want := range map[string]os.FileMode{filepath.Dir(f.socket()): os.ModeDir | 0o700, f.socket(): os.ModeSocket | 0o600} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
			}
		}
	})

	t.Run("get goes through the agent", func(t *testing.T) {
		before := gets()
		if out, errs, code := get("--profile", "never"); code != 0 || out != f.never.AuthToken {
			t.Fatalf("get: code %d, stderr %s", code, errs)
		}
		if after := gets(); after != before+1 {
			t.Errorf("agent served %v gets, want %v", after, before+1)
		}
		// With the stored pair gone, only the agent can still answer.
		if err := os.Rename(filepath.Join(f.dir, "never.json"), filepath.Join(f.dir, "never.away")); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := get("--profile", "never"); code != 0 || out != f.never.AuthToken {
			t.Errorf("get with the backend file gone: code %d, stderr %s: the agent did not answer", code, errs)
		}
		// ...and a caller that opts out resolves it directly and fails.
		out, errs, code := runCLI(t, append(f.env, "CREDHELPER_NO_AGENT=1"), "get", "--profile", "never")
		if code != 1 || out != "" || !strings.Contains(errs, "no credential at") {
			t.Errorf("CREDHELPER_NO_AGENT get: code %d, stdout %q, stderr %q: want a not-found failure", code, out, errs)
		}
	})

	t.Run("flags and other configs bypass the agent", func(t *testing.T) {
		before := gets()
		if out, errs, code := get("--profile", "never", "--backend", "file:"+filepath.Join(f.dir, "other.json")); code != 0 || out != f.other.AuthToken {
			t.Errorf("get --backend: code %d, stderr %s: want the other file's token", code, errs)
		}
		otherCfg := filepath.Join(f.dir, "other.toml")
		if err := os.WriteFile(otherCfg, []byte(fmt.Sprintf("[profiles.never]\nbackend = %q\njournal_dir = %q\n", "file:"+filepath.Join(f.dir, "other.json"), filepath.Join(f.dir, "journal"))), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := get("--config", otherCfg, "--profile", "never"); code != 0 || out != f.other.AuthToken {
			t.Errorf("get --config other: code %d, stderr %s: want the other config's token", code, errs)
		}
		// A profile the agent does not serve falls back too.
		if _, errs, code := get("--profile", "nosuch"); code != 2 || !strings.Contains(errs, `no profile "nosuch"`) {
			t.Errorf("get --profile nosuch: code %d, stderr %s", code, errs)
		}
		if after := gets(); after != before {
			t.Errorf("the agent served %v gets meant for direct resolution", after-before)
		}
	})

	t.Run("an endpoint the pair lacks is refused by the agent", func(t *testing.T) {
		_, errs, code := get("--profile", "never", "--endpoint", "cell-other.example.com")
		if code != 1 || !strings.Contains(errs, "cell-other.example.com") || !strings.Contains(errs, "answered by credhelper agent") {
			t.Errorf("get --endpoint: code %d, stderr %s", code, errs)
		}
	})

	t.Run("second agent refused", func(t *testing.T) {
		_, errs, code := runCLI(t, f.env, "agent")
		if code == 0 || !strings.Contains(errs, "another agent is running on "+f.socket()) || !strings.Contains(errs, fmt.Sprintf("pid %d", ap.cmd.Process.Pid)) {
			t.Errorf("second agent: code %d, stderr %s", code, errs)
		}
		// Refused before it opens a profile: its sink is not written and
		// the sink's command not run (the same socket, another config).
		other := filepath.Join(f.dir, "second.toml")
		body := fmt.Sprintf("[profiles.never]\nbackend = \"file:%[1]s/never.json\"\njournal_dir = \"%[1]s/journal\"\n[[profiles.never.sink]]\npath = \"%[1]s/second-sink\"\ncommand = [\"/usr/bin/touch\", \"%[1]s/second-ran\"]\n", f.dir)
		if err := os.WriteFile(other, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errs, code = runCLI(t, f.env, "--config", other, "agent")
		if code == 0 || !strings.Contains(errs, "another agent is running on "+f.socket()) {
			t.Errorf("second agent with a sink: code %d, stderr %s", code, errs)
		}
		for _, name := range []string{"second-sink", "second-ran"} {
			if _, err := os.Stat(filepath.Join(f.dir, name)); !os.IsNotExist(err) {
				t.Errorf("the refused agent touched %s (%v): it opened its profiles before taking the socket", name, err)
			}
		}
	})

	t.Run("another user cannot connect", func(t *testing.T) {
		if got := runAsNobody(t, "raw", f.socket()); got != "dial-eacces" {
			t.Errorf("uid 65534 connecting to the agent: %s, want dial-eacces", got)
		}
	})

	t.Run("keeps the expiring profile fresh without callers", func(t *testing.T) {
		if d := 9*time.Second - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		// The agent goes on refreshing while the test looks: take the
		// issuer's counts and the stored generation at a quiet moment (the
		// counts the same before and after reading the record).
		var (
			rec     *provider.Record
			stats   dev.Stats
			samples []promSample
		)
		for range 50 {
			before := f.iss.Stats()
			samples = scrape(t, metricsURL)
			rec = f.stored(t, "exp.json")
			stats = f.iss.Stats()
			if stats == before && stats.RefreshAttempts == stats.Refreshes && rec.Pair.Generation == stats.Refreshes {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		gen := rec.Pair.Generation
		t.Logf("generation %d after %v; issuer %+v", gen, time.Since(start).Round(time.Millisecond), stats)
		if gen < 3 {
			t.Errorf("generation %d after 9s of 4s pairs: the agent did not keep the profile fresh", gen)
		}
		if stats.Refreshes != gen || stats.RefreshAttempts != gen || stats.Reuses != 0 || stats.Rejected != 0 || stats.FamiliesRevoked != 0 {
			t.Errorf("issuer %+v for generation %d: want exactly one refresh per generation, no reuse", stats, gen)
		}
		if v, _ := promValue(samples, "credhelper_refresh_events_total", "profile", "exp", "event", "committed"); uint64(v) != gen {
			t.Errorf("committed events %v, want %d", v, gen)
		}
		if v, ok := promValue(samples, "credhelper_credential_generation", "profile", "exp"); !ok || uint64(v)+1 < gen {
			t.Errorf("generation gauge %v, stored %d", v, gen)
		}
		if v, _ := promValue(samples, "credhelper_credential_seconds_to_expiry", "profile", "exp"); v <= 0 || v > 4 {
			t.Errorf("seconds_to_expiry{exp} = %v, want in (0, 4]", v)
		}
		if v, _ := promValue(samples, "credhelper_credential_seconds_to_expiry", "profile", "never"); !math.IsInf(v, 1) {
			t.Errorf("seconds_to_expiry{never} = %v, want +Inf", v)
		}
		for _, ev := range []string{"failed", "conflict", "orphaned", "lineage_broken"} {
			if v, ok := promValue(samples, "credhelper_refresh_events_total", "profile", "exp", "event", ev); !ok || v != 0 {
				t.Errorf("%s events = %v (present %v), want 0", ev, v, ok)
			}
		}
		out, errs, code := get("--profile", "exp")
		if code != 0 || out != f.stored(t, "exp.json").Pair.AuthToken && out != rec.Pair.AuthToken {
			t.Errorf("get --profile exp: code %d, stderr %s: want the current stored token", code, errs)
		}
		st, err := (&agent.Client{Path: f.socket()}).Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Profiles {
			if p.LastError != "" || !p.Loaded {
				t.Errorf("status %+v", p)
			}
		}
	})

	t.Run("SIGTERM exits 0 and removes the socket", func(t *testing.T) {
		if code := ap.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit code %d after SIGTERM:\n%s", code, ap.log())
		}
		if _, err := os.Lstat(f.socket()); !os.IsNotExist(err) {
			t.Errorf("socket after exit: %v", err)
		}
		if !strings.Contains(ap.log(), `"msg":"agent: stopped"`) {
			t.Errorf("no clean stop in the log:\n%s", ap.log())
		}
		exp := f.stored(t, "exp.json").Pair
		for _, tok := range []string{f.never.AuthToken, f.never.RefreshToken, exp.AuthToken, exp.RefreshToken} {
			if strings.Contains(ap.log(), tok) {
				t.Error("the agent's log contains a token")
			}
		}
	})

	t.Run("falls back when the agent is gone", func(t *testing.T) {
		start := time.Now()
		if _, errs, code := get("--profile", "never"); code != 1 || !strings.Contains(errs, "no credential at") {
			t.Errorf("get without agent and without the file: code %d, stderr %s", code, errs)
		}
		if err := os.Rename(filepath.Join(f.dir, "never.away"), filepath.Join(f.dir, "never.json")); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := get("--profile", "never"); code != 0 || out != f.never.AuthToken {
			t.Errorf("direct get: code %d, stderr %s", code, errs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("two direct gets took %v", d)
		}
	})
}

// TestAgentSIGTERMFinishesRefresh stops the agent while a refresh is at the
// issuer: the agent must wait for it, commit the new pair and exit 0, so no
// spent refresh token is left uncommitted.
func TestAgentSIGTERMFinishesRefresh(t *testing.T) {
	f := newFixture(t, func(o *dev.Options) { o.RefreshDelay = 1500 * time.Millisecond })
	ap := startAgent(t, f.env, "--profiles", "exp")
	ap.waitLog(t, "credhelper refresh: refresh_started", 10*time.Second)
	time.Sleep(200 * time.Millisecond) // the request is at the issuer now
	if code := ap.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d:\n%s", code, ap.log())
	}
	rec := f.stored(t, "exp.json")
	stats := f.iss.Stats()
	if rec.Pair.Generation != 1 || rec.Lease != nil || stats.Refreshes != 1 {
		t.Errorf("after SIGTERM mid-refresh: stored generation %d, lease %v, issuer refreshes %d: want the refresh committed (1, no lease, 1)\n%s",
			rec.Pair.Generation, rec.Lease, stats.Refreshes, ap.log())
	}
	if !strings.Contains(ap.log(), `"msg":"credhelper refresh: committed"`) {
		t.Errorf("no commit logged:\n%s", ap.log())
	}
}

// TestOtherUserRefused connects as uid 65534 to a server whose socket
// other users can reach (as if its directory were shared), so that only the
// SO_PEERCRED check stands between them; and runs the real client as uid
// 65534 against this (root) agent, which it must refuse to trust.
func TestOtherUserRefused(t *testing.T) {
	fp := &fakeProvider{pair: testPair(1, time.Hour)}
	ts := startServer(t, []server.Profile{{Name: "p", Provider: fp}})
	if err := os.Chmod(filepath.Dir(ts.path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ts.path, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := runAsNobody(t, "raw", ts.path); got != "closed" {
		t.Errorf("uid 65534 pinging the agent: %s, want closed", got)
	}
	if got := runAsNobody(t, "client", ts.path); got != "foreign-agent" {
		t.Errorf("uid 65534's client against a root agent: %s, want foreign-agent", got)
	}
	if n := fp.calls.Load(); n != 0 {
		t.Errorf("provider called %d times", n)
	}
	var sb strings.Builder
	_ = ts.metrics.WriteText(&sb)
	if v, _ := promValue(parseProm(t, sb.String()), "credhelper_agent_refused_peers_total"); v != 2 {
		t.Errorf("refused peers = %v, want 2 (both children: the server checks before reading)", v)
	}
	// This user is still served.
	if _, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"}); err != nil {
		t.Errorf("own user: %v", err)
	}
}
