package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/refresh"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/provider"
)

// inProcessAgent serves one profile "p" from fn on a fresh socket named by
// $CREDHELPER_AGENT_SOCKET, for the config file it returns.
func inProcessAgent(t *testing.T, fn provider.CredentialProviderFunc) (cfg string, calls *atomic.Int64) {
	t.Helper()
	dir, err := os.MkdirTemp("", "chcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[profiles.p]\nbackend = \"file:"+filepath.Join(dir, "missing.json")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	calls = new(atomic.Int64)
	counted := provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		calls.Add(1)
		return fn(ctx)
	})
	srv, err := server.New([]server.Profile{{Name: "p", Provider: counted}}, func(o *server.Options) { o.ConfigPath = cfg })
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := agent.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Setenv(agent.SocketEnv, sock)
	t.Setenv(config.EnvNoAgent, "")
	t.Setenv("CREDHELPER_CONFIG", cfg)
	return cfg, calls
}

func testApp() *app {
	return &app{stdout: io.Discard, stderr: io.Discard, logger: slog.New(slog.DiscardHandler), profile: "p"}
}

func TestViaAgent(t *testing.T) {
	pair := provider.Pair{AuthToken: "tok", RefreshToken: "secret", ValidUntil: time.Now().Add(time.Hour).Truncate(time.Second), Endpoint: "cell.example.com", Generation: 4}
	var fail atomic.Pointer[error]
	cfg, calls := inProcessAgent(t, func(context.Context) (provider.Pair, error) {
		if e := fail.Load(); e != nil {
			return provider.Pair{}, *e
		}
		return pair, nil
	})
	other := filepath.Join(filepath.Dir(cfg), "other.toml")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		tweak   func(a *app)
		profile string
		fail    error
		wantOK  bool
		wantErr error
		served  bool // the agent's provider was asked
	}{
		{name: "served", profile: "p", wantOK: true, served: true},
		{name: "explicit config is the agent's", tweak: func(a *app) { a.configPath = cfg }, profile: "p", wantOK: true, served: true},
		{name: "--backend bypasses", tweak: func(a *app) { a.backend = "file:x.json" }, profile: "p"},
		{name: "--issuer bypasses", tweak: func(a *app) { a.issuer = "dev:127.0.0.1:1" }, profile: "p"},
		{name: "another config falls back", tweak: func(a *app) { a.configPath = other }, profile: "p"},
		{name: "unknown profile falls back", profile: "q"},
		{name: "more validity than the agent keeps falls back", tweak: func(a *app) { a.minValid = config.Duration{Duration: 2 * time.Hour} }, profile: "p", served: true},
		{name: "agent error is final and typed", profile: "p", fail: fmt.Errorf("refresh: gone: %w", provider.ErrLineageBroken), wantOK: true, wantErr: provider.ErrLineageBroken, served: true},
		// Its own kind, so the command's hint (pass --issuer ...) applies.
		{name: "no issuer crosses the agent as itself", profile: "p", fail: fmt.Errorf("refresh: due: %w", refresh.ErrNoIssuer), wantOK: true, wantErr: refresh.ErrNoIssuer, served: true},
		// The agent works to the profile's min_validity; a caller with its
		// own (--min-validity 0s) resolves by its own rule when that fails.
		{name: "agent error with the caller's own --min-validity falls back", tweak: func(a *app) { a.minValid = zeroDuration(t) }, profile: "p", fail: fmt.Errorf("refresh: less than 1m left: %w", provider.ErrExpired), served: true},
		{name: "endpoint checked by the agent", tweak: func(a *app) { a.endpoint = "cell-2.example.com" }, profile: "p", wantOK: true, wantErr: &provider.EndpointMismatchError{}, served: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testApp()
			if tc.tweak != nil {
				tc.tweak(a)
			}
			if tc.fail != nil {
				fail.Store(&tc.fail)
				defer fail.Store(nil)
			}
			before := calls.Load()
			p, ok, err := a.viaAgent(context.Background(), tc.profile)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v (err %v)", ok, tc.wantOK, err)
			}
			if served := calls.Load() > before; served != tc.served {
				t.Errorf("agent asked = %v, want %v", served, tc.served)
			}
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if ok && (p.AuthToken != "tok" || p.Generation != 4 || !p.ValidUntil.Equal(pair.ValidUntil) || p.RefreshToken != "") {
					t.Errorf("pair = %v", p)
				}
			case *provider.EndpointMismatchError:
				if !errors.As(err, &want) || want.Want != "cell-2.example.com" {
					t.Errorf("err = %v, want an endpoint mismatch", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
		})
	}
	t.Run("no agent", func(t *testing.T) {
		t.Setenv(agent.SocketEnv, filepath.Join(t.TempDir(), "none.sock"))
		start := time.Now()
		if _, ok, err := testApp().viaAgent(context.Background(), "p"); ok || err != nil {
			t.Errorf("viaAgent = %v, %v; want a quiet fallback", ok, err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("fallback took %v", d)
		}
	})
	t.Run("opt out", func(t *testing.T) {
		t.Setenv(config.EnvNoAgent, "1")
		before := calls.Load()
		if _, ok, _ := testApp().viaAgent(context.Background(), "p"); ok || calls.Load() != before {
			t.Error("CREDHELPER_NO_AGENT did not bypass the agent")
		}
	})
}

// TestGetThroughAgent runs the get command in process: the token comes
// from the agent although the profile's backend file does not exist.
func TestGetThroughAgent(t *testing.T) {
	_, calls := inProcessAgent(t, func(context.Context) (provider.Pair, error) {
		return provider.Pair{AuthToken: "tok-from-agent"}, nil
	})
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"credhelper", "get", "--profile", "p"}, strings.NewReader(""), &out, &errb)
	if code != 0 || out.String() != "tok-from-agent\n" || calls.Load() != 1 {
		t.Errorf("get: code %d, stdout %q, stderr %q, agent calls %d", code, out.String(), errb.String(), calls.Load())
	}
	out.Reset()
	errb.Reset()
	t.Setenv(config.EnvNoAgent, "1")
	code = run(context.Background(), []string{"credhelper", "get", "--profile", "p"}, strings.NewReader(""), &out, &errb)
	if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "no credential at") {
		t.Errorf("direct get of a missing file: code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestAgentCommandRefuses(t *testing.T) {
	dir := isolate(t)
	cfg := filepath.Join(dir, "config.toml")
	body := "[profiles.p]\nbackend = \"file:" + filepath.Join(dir, "c.json") + "\"\n" +
		"[profiles.bad]\nbackend = \"file:" + filepath.Join(dir, "b.json") + "\"\nissuer = \"plugin:undefined:x\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDHELPER_CONFIG", cfg)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--backend", "file:x"}, "do not apply to the agent"},
		{[]string{"agent", "--metrics-addr", "0.0.0.0:9464"}, "must be a loopback host:port"},
		{[]string{"agent", "--metrics-addr", "example.com:9464"}, "must be a loopback host:port"},
		{[]string{"agent", "--profiles", "p,nosuch"}, `"nosuch", which is not a profile`},
		{[]string{"agent", "--log-format", "xml"}, "--log-format"},
		// Named on the command line, a profile that cannot be served
		// stops the agent instead of being skipped.
		{[]string{"agent", "--profiles", "p,bad"}, `--profiles names a profile that cannot be served (fix it, or leave it out of --profiles): profile "bad": issuer in [profiles.bad] (` + cfg + `:5) names plugin "undefined"`},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"credhelper"}, tc.args...), strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: code %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// TestAgentReloadWithoutAgent: reload with nothing on the socket says so
// and exits 1.
func TestAgentReloadWithoutAgent(t *testing.T) {
	isolate(t)
	sock := filepath.Join(t.TempDir(), "none.sock")
	r := cli(t, "", "agent", "reload", "--socket", sock, "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "no agent answers on "+sock) {
		t.Errorf("got exit %d, %q; want 1 and no agent answers", r.code, r.stderr)
	}
}

// TestAgentSinkConfigErrors: a sink template that does not parse, a
// template file that is missing or another user's, a mode that lets
// others read the token, or a path that is the credential file, its lock
// or the config file stops the agent at start with the reason.
func TestAgentSinkConfigErrors(t *testing.T) {
	dir := isolate(t)
	cfg := filepath.Join(dir, "config.toml")
	t.Setenv("CREDHELPER_CONFIG", cfg)
	// A template file another user owns: they would choose what the
	// service reads.
	theirs := filepath.Join(dir, "theirs.tmpl")
	if err := os.WriteFile(theirs, []byte("{{.Token}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatalf("chown (this test runs as root, as CI does): %v", err)
	}
	out := "path = \"" + filepath.Join(dir, "out") + "\"\n"
	for _, c := range []struct{ sink, want string }{
		{out + "format = \"template\"\ntemplate = \"{{.Nope}}\"", "can't evaluate field Nope"},
		{out + "format = \"template\"\ntemplate_file = \"" + filepath.Join(dir, "missing.tmpl") + "\"", "template_file"},
		{out + "format = \"template\"\ntemplate_file = \"" + theirs + "\"", "belongs to uid 65534"},
		{out + "mode = \"0644\"", "mode 0644 lets others read the token"},
		{"path = \"" + filepath.Join(dir, "p.json") + "\"", `the credential file of profile "p"`},
		{"path = \"" + filepath.Join(dir, "p.json.lock") + "\"", `the lock of profile "p"'s credential file`},
		{"path = \"" + cfg + "\"", "the config file"},
		// Directories credhelper keeps its own files in.
		{"path = \"" + filepath.Join(dir, "run", "agent.sock") + "\"", "in the agent's socket directory, which credhelper keeps to itself"},
		{"path = \"" + filepath.Join(dir, "state", "credhelper", "journal", "x.json") + "\"", "in the journal directory"},
		{"path = \"" + filepath.Join(dir, "state", "credhelper", "refresher", "x") + "\"", "in the background refreshers' directory"},
		{"path = \"" + filepath.Join(dir, "state", "credhelper", "journal", "sub", "x") + "\"", "in the journal directory"},
	} {
		body := fmt.Sprintf("[profiles.p]\nbackend = \"file:%s\"\n[[profiles.p.sink]]\n%s\n", filepath.Join(dir, "p.json"), c.sink)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r := cli(t, "", "agent", "--socket", filepath.Join(dir, "run", "a.sock"))
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("sink %q: exit %d, %q; want 2 and %q", c.sink, r.code, r.stderr, c.want)
		}
		if strings.Contains(r.stderr, "template: template:") || strings.Contains(r.stderr, "SinkData") {
			t.Errorf("sink %q: the message is not in the user's words: %q", c.sink, r.stderr)
		}
	}
}

// TestConfigCheckSinks: config check lists, per profile, what the agent
// would refuse of its sinks: a mode others can read, a path that is the
// profile's credential file, a template naming an unknown field.
func TestConfigCheckSinks(t *testing.T) {
	dir := isolate(t)
	cfg := filepath.Join(dir, "config.toml")
	t.Setenv("CREDHELPER_CONFIG", cfg)
	body := strings.ReplaceAll(`[profiles.p]
backend = "file:DIR/p.json"
[[profiles.p.sink]]
path = "DIR/out"
mode = "0644"
[profiles.q]
backend = "file:DIR/q.json"
[[profiles.q.sink]]
path = "DIR/q.json"
[profiles.r]
backend = "file:DIR/r.json"
[[profiles.r.sink]]
path = "DIR/rout"
format = "template"
template = "{{.Nope}}"
[profiles.j]
backend = "file:DIR/j.json"
journal_dir = "DIR/jj"
[[profiles.j.sink]]
path = "DIR/jj/entry.json"
[[profiles.j.sink]]
path = "DIR/jout"
format = "template"
template_file = "DIR/j.tmpl"
[profiles.ok]
backend = "file:DIR/ok.json"
[[profiles.ok.sink]]
path = "DIR/okout"
mode = "0640"
`, "DIR", dir)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "j.tmpl"), []byte("x={{.Token}}\ny={{.Expiry.Foo}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "", "config", "check")
	for _, want := range []string{
		`profile "p": sink ` + dir + `/out: mode 0644 lets others read the token`,
		`profile "q": sink ` + dir + `/q.json: path is the credential file of profile "q"`,
		`profile "r": agent: sink ` + dir + `/rout: template:`,
		`profile "j": sink ` + dir + `/jj/entry.json: the file would be in the journal directory, which credhelper keeps to itself`,
		// Every broken sink of a profile, not the first only; a template
		// file's error names the template file, and no Go type.
		`profile "j": agent: sink ` + dir + `/jout: template: j.tmpl:2:11: executing "j.tmpl" at <.Expiry.Foo>: can't evaluate field Foo (fields:`,
		"5 problem(s)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config check lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 1 || strings.Contains(r.stdout, `profile "ok"`) {
		t.Errorf("exit %d, want 1 and nothing about profile ok:\n%s", r.code, r.stdout)
	}
}

// zeroDuration is "0s" as a flag or the environment sets it: set, zero.
func zeroDuration(t *testing.T) config.Duration {
	t.Helper()
	var d config.Duration
	if err := d.UnmarshalText([]byte("0s")); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAgentSettingsInUsersWords: an [agent] setting the agent refuses is
// named as it was set (file and line, variable, or flag), config check
// reports it, and a problem in [agent] stops the agent instead of being
// ignored.
func TestAgentSettingsInUsersWords(t *testing.T) {
	dir := isolate(t)
	cfg := filepath.Join(dir, "config.toml")
	t.Setenv("CREDHELPER_CONFIG", cfg)
	write := func(agentTable string) {
		body := agentTable + "\n[profiles.p]\nbackend = \"file:" + filepath.Join(dir, "c.json") + "\"\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[agent]\nmetrics_addr = \"0.0.0.0:9464\"")
	want := `metrics_addr in [agent] (` + cfg + `:2) "0.0.0.0:9464" must be a loopback host:port`
	if r := cli(t, "", "agent"); r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("agent: exit %d, %q; want 2 and %q", r.code, r.stderr, want)
	}
	if r := cli(t, "", "config", "check"); r.code != 1 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "a problem in [agent] stops the agent") {
		t.Errorf("config check: exit %d, %q; want 1 and %q", r.code, r.stdout, want)
	}
	t.Setenv("CREDHELPER_AGENT_METRICS_ADDR", "10.0.0.1:1")
	if r := cli(t, "", "agent"); r.code != 2 || !strings.Contains(r.stderr, `$CREDHELPER_AGENT_METRICS_ADDR "10.0.0.1:1" must be a loopback`) {
		t.Errorf("agent with the variable: exit %d, %q", r.code, r.stderr)
	}
	t.Setenv("CREDHELPER_AGENT_METRICS_ADDR", "")
	write("[agent]\nmetrics_addr = 5")
	if r := cli(t, "", "agent"); r.code != 2 || !strings.Contains(r.stderr, "[agent] cannot be used") || !strings.Contains(r.stderr, "metrics_addr in [agent] must be a string") {
		t.Errorf("agent with a bad [agent]: exit %d, %q; want 2 and the problem", r.code, r.stderr)
	}
}

// TestSilentAgentNote: told by the front that the agent did not answer,
// credhelper-full warns once, resolves directly without asking it again,
// and removes the note from its environment (so a command it runs does
// not inherit it).
func TestSilentAgentNote(t *testing.T) {
	dir := isolate(t)
	sock := filepath.Join(dir, "nobody-answers.sock") // nothing listens: asking would fail differently
	cfg := filepath.Join(dir, "config.toml")
	body := "[profiles.default]\nbackend = \"file:" + filepath.Join(dir, "c.json") + "\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDHELPER_CONFIG", cfg)
	t.Setenv(agent.SocketEnv, sock)
	if r := cli(t, record(secretKey, secretRefresh, 0), "put"); r.code != 0 {
		t.Fatalf("put: %s", r.stderr)
	}
	t.Setenv(agent.SilentEnv, sock)
	r := cli(t, "", "get")
	if r.code != 0 || r.stdout != secretKey+"\n" || strings.Count(r.stderr, "did not answer within") != 1 {
		t.Errorf("get after the front found the agent silent: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if v, ok := os.LookupEnv(agent.SilentEnv); ok {
		t.Errorf("$%s still set (%q): a command credhelper runs would inherit it", agent.SilentEnv, v)
	}
}
