package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProfilesAndDefaults(t *testing.T) {
	f, err := Parse([]byte(`
[defaults]
min_validity = "2m"
issuer = "momento"

[profiles.a]
backend = "file:/tmp/a.json"
lease_duration = "90s"

[profiles.b]
backend = "awssm:momento/authentication-token"
issuer = "oauth2:https://login.example.com/token"
min_validity = "5m"

[profiles.b.oauth2]
scopes = ["x", "y"]

[profiles.b.docker]
server_urls = ["registry.example.com"]

[plugins.gcp]
sha256 = "abc"
env = ["GOOGLE_APPLICATION_CREDENTIALS"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems) != 0 {
		t.Fatalf("problems in a valid file: %v", f.Problems)
	}
	a, err := f.Profile("a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Issuer != "momento" || a.MinValidity.Duration != 2*time.Minute || a.LeaseDuration.Duration != 90*time.Second {
		t.Errorf("profile a = %+v, want defaults applied", a)
	}
	b, _ := f.Profile("b")
	if b.MinValidity.Duration != 5*time.Minute || b.Issuer != "oauth2:https://login.example.com/token" || len(b.Docker.ServerURLs) != 1 || len(b.OAuth2.Scopes) != 2 {
		t.Errorf("profile b = %+v, want its own settings to win", b)
	}
	if got := f.ProfileNames(); strings.Join(got, ",") != "a,b" {
		t.Errorf("ProfileNames = %v", got)
	}
	if _, err := f.Profile("c"); err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Errorf("unknown profile error = %v, want the known names", err)
	}
	if p, err := f.Profile("default"); err != nil || p.Issuer != "momento" {
		t.Errorf("default profile = %+v, %v; want the defaults", p, err)
	}
	if f.Plugins["gcp"].SHA256 != "abc" || len(f.Plugins["gcp"].Env) != 1 {
		t.Errorf("plugin = %+v", f.Plugins["gcp"])
	}
}

// TestProblemsAreScoped is issue 19's case 2: one typo breaks only its own
// profile, and says where it is and what was meant.
func TestProblemsAreScoped(t *testing.T) {
	f, err := Parse([]byte(`[profiles.alpha]
backend = "file:/tmp/a.json"

[profiles.gamma]
backned = "x"
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Profile("alpha"); err != nil {
		t.Errorf("alpha fails because of gamma: %v", err)
	}
	_, err = f.Profile("gamma")
	var pe *ProfileError
	if !errors.As(err, &pe) {
		t.Fatalf("gamma: err = %v, want a *ProfileError", err)
	}
	want := `config: profile "gamma" cannot be used: line 5: unknown setting backned in [profiles.gamma]: did you mean backend?`
	if err.Error() != want {
		t.Errorf("gamma:\n got %s\nwant %s", err, want)
	}
}

func TestProblemMessages(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"typo", "[profiles.a]\nbakend = \"file:x\"", `line 2: unknown setting bakend in [profiles.a]: did you mean backend?`},
		{"inline secret", "[profiles.a.oauth2]\nclient_secret = \"s3cr3t\"", `line 2: client_secret in [profiles.a.oauth2]: secrets are never written in the config file: name the variable that holds it with client_secret_env, or the file with client_secret_file`},
		{"flat inline secret", "[profiles.a]\nclient_secret = \"s3cr3t\"", `line 2: client_secret in [profiles.a]: secrets are never written in the config file: name the variable that holds it with client_secret_env in [profiles.a.oauth2], or the file with client_secret_file in [profiles.a.oauth2]`},
		{"vault secret", "[profiles.a.vault]\nsecret_id = \"s3cr3t\"", `line 2: secret_id in [profiles.a.vault]: secrets are never written in the config file: name the variable that holds it with secret_id_file`},
		{"list given a string", "[profiles.a.oauth2]\nscopes = \"read\"", `line 2: scopes in [profiles.a.oauth2] must be a list of strings, not a string: write it as scopes = ["read"]`},
		{"argv given a string", "[profiles.a]\nbackend = \"file:x\"\n[[profiles.a.sink]]\npath = \"/run/x\"\ncommand = \"systemctl reload app\"", `line 5: command in [[profiles.a.sink]] must be a list of strings, not a string: write it as command = ["systemctl", "reload", "app"]`},
		{"negative duration", "[profiles.a]\nclock_skew = \"-1s\"", `line 2: clock_skew in [profiles.a] is "-1s", a negative duration: write it as clock_skew = "30s"`},
		{"wrong type", "[profiles.a]\nbackend = 12", `line 2: backend in [profiles.a] must be a string, not an integer: write it as backend = "file:~/.config/credhelper/cred.json"`},
		{"bad duration", "[profiles.a]\nmin_validity = \"soon\"", `line 2: min_validity in [profiles.a] is "soon", not a duration: write it as min_validity = "1m"`},
		{"negative duration", "[profiles.a]\n\nmin_validity = \"-5s\"", `line 3: min_validity in [profiles.a] is "-5s", a negative duration`},
		{"zero lease", "[profiles.a]\nlease_duration = \"0s\"", `line 2: lease_duration in [profiles.a] is "0s" but must be longer than zero: write it as lease_duration = "60s"`},
		{"zero sink command timeout", "[profiles.a]\n[[profiles.a.sink]]\npath = \"/run/x\"\ncommand_timeout = \"0ms\"", `line 4: command_timeout in [[profiles.a.sink]] is "0ms" but must be longer than zero`},
		{"unquoted duration", "[profiles.a]\nclock_skew = 30", `line 2: clock_skew in [profiles.a] must be a duration in quotes, not an integer: write it as clock_skew = "30s"`},
		{"misplaced", "[profiles.a]\nrole_id = \"r\"", `line 2: unknown setting role_id in [profiles.a]: did you mean role_id in [profiles.a.vault]?`},
		{"small table", "[profiles.a.docker]\nurls = [\"x\"]", `line 2: unknown setting urls in [profiles.a.docker]: its settings are server_urls, username`},
		{"section", "[profile.a]\nbackend = \"x\"", `line 1: unknown section [profile]: did you mean [profiles]?`},
		{"agent", "[agent]\nsocket = 1", `line 2: socket in [agent] must be a string, not an integer`},
		{"plugin", "[plugins.x]\nsha = \"1\"", `line 2: unknown setting sha in [plugins.x]: did you mean sha256?`},
		{"inline table", "[profiles.a]\nvault = { role = \"r\" }", `line 2: unknown setting role in [profiles.a.vault]: did you mean role_id?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Problems) != 1 {
				t.Fatalf("problems = %v, want one", f.Problems)
			}
			got := f.Problems[0].Error()
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(got, "s3cr3t") {
				t.Errorf("the message repeats the secret: %s", got)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Parse([]byte("[profiles.a\nbackend = 1"))
	if err == nil || !strings.HasPrefix(err.Error(), "line 1: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line starting with the line number", err)
	}
}

func TestFlatKeysDeprecated(t *testing.T) {
	f, err := Parse([]byte(`[profiles.a]
region = "us-west-2"
client_id = "flat"
[profiles.a.oauth2]
client_id = "nested"
`))
	if err != nil || len(f.Problems) != 0 {
		t.Fatalf("err %v, problems %v", err, f.Problems)
	}
	p, _ := f.Profile("a")
	if p.AWS.Region != "us-west-2" || p.OAuth2.ClientID != "nested" {
		t.Errorf("profile = %+v: want the flat region read and the nested client_id to win", p)
	}
	if len(f.Deprecated) != 2 {
		t.Fatalf("deprecated = %v, want two", f.Deprecated)
	}
	if got, want := f.Deprecated[0].Error(), "line 2: region in [profiles.a] is deprecated: write it as region in [profiles.a.aws]"; got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestResolveLayers(t *testing.T) {
	f, err := Parse([]byte(`[defaults]
min_validity = "2m"
clock_skew = "10s"
[profiles.p]
backend = "file:/tmp/p.json"
min_validity = "3m"
[profiles.p.oauth2]
client_id = "from-file"
[profiles.p.docker]
server_urls = ["r.example.com"]
[defaults.docker]
username = "not-inherited"
`))
	if err != nil {
		t.Fatal(err)
	}
	f.setPath("/etc/c.toml")
	flags := &Profile{Backend: "file:/tmp/flag.json"}
	env := &Profile{Backend: "file:/tmp/env.json", Issuer: "dev:127.0.0.1:1", OAuth2: OAuth2{ClientID: "from-env"}}
	r, err := f.Resolve("p", flags, env)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Profile
	switch {
	case p.Backend != "file:/tmp/flag.json":
		t.Errorf("backend = %q, want the flag's", p.Backend)
	case p.Issuer != "dev:127.0.0.1:1" || p.OAuth2.ClientID != "from-env":
		t.Errorf("issuer, client_id = %q, %q; want the environment's", p.Issuer, p.OAuth2.ClientID)
	case p.MinValidity.Duration != 3*time.Minute || p.ClockSkew.Duration != 10*time.Second:
		t.Errorf("min_validity, clock_skew = %v, %v; want the profile's and [defaults]'", p.MinValidity, p.ClockSkew)
	case p.RefreshFloor.Duration != 5*time.Minute || p.LeaseDuration.Duration != time.Minute:
		t.Errorf("refresh_floor, lease = %v, %v; want the built-in defaults", p.RefreshFloor, p.LeaseDuration)
	case p.Docker.Username != "" || len(p.Docker.ServerURLs) != 1:
		t.Errorf("docker = %+v: a profile's docker table is its own", p.Docker)
	}
	for path, want := range map[string]string{
		"backend":          "--backend",
		"oauth2.client_id": "$CREDHELPER_CLIENT_ID",
		"min_validity":     "min_validity in [profiles.p] (/etc/c.toml:6)",
		"clock_skew":       "clock_skew in [defaults] (/etc/c.toml:3)",
		"refresh_floor":    "the default refresh_floor",
	} {
		if got := r.Describe(path); got != want {
			t.Errorf("Describe(%s) = %q, want %q", path, got, want)
		}
	}
	if got, want := r.HowToSet("oauth2.client_id"), "pass --client-id or set client_id in [profiles.p.oauth2]"; got != want {
		t.Errorf("HowToSet = %q, want %q", got, want)
	}
	if _, err := f.Resolve("nope", nil, nil); err == nil {
		t.Error("an unknown profile resolved")
	}
	// An explicit zero is a value, not "unset": it overrides [defaults]
	// and the built-in default.
	z, err := Parse([]byte("[defaults]\nmin_validity = \"2m\"\n[profiles.z]\nbackend = \"file:/tmp/z.json\"\nmin_validity = \"0s\"\nclock_skew = \"0s\"\n"))
	if err != nil || len(z.Problems) != 0 {
		t.Fatal(err, z.Problems)
	}
	if r, err := z.Resolve("z", nil, nil); err != nil || r.Profile.MinValidity.Duration != 0 || r.Profile.ClockSkew.Duration != 0 || r.Describe("clock_skew") != "clock_skew in [profiles.z]" {
		t.Errorf("explicit 0s: %v; min_validity %v, clock_skew %v from %s", err, r.Profile.MinValidity, r.Profile.ClockSkew, r.Describe("clock_skew"))
	}
	var zflag Profile
	if s, _ := Lookup(ScopeProfile, "min_validity"); s.SetText(&zflag, "0s") != nil || !zflag.MinValidity.IsSet() {
		t.Errorf("--min-validity 0s not set: %+v", zflag.MinValidity)
	} else if r, _ := z.Resolve("z", &Profile{}, &Profile{MinValidity: Duration{Duration: time.Hour}}); r.Profile.MinValidity.Duration != time.Hour {
		t.Errorf("environment under an explicit 0s profile: %v", r.Profile.MinValidity)
	} else if r, _ := z.Resolve("z", &zflag, &Profile{MinValidity: Duration{Duration: time.Hour}}); r.Profile.MinValidity.Duration != 0 || r.Describe("min_validity") != "--min-validity" {
		t.Errorf("--min-validity 0s over the environment: %v from %s", r.Profile.MinValidity, r.Describe("min_validity"))
	}
	if s, _ := Lookup(ScopeProfile, "lease_duration"); s.SetText(&zflag, "0s") == nil {
		t.Error("--lease 0s accepted")
	} else if err := s.SetText(&zflag, "0s"); err.Error() != `"0s": must be longer than zero, such as 90s or 5m` {
		t.Errorf("--lease 0s: %v", err)
	}
	if r, err := f.Resolve("nope", &Profile{Backend: "file:x"}, nil); err != nil || r.Profile.MinValidity.Duration != 2*time.Minute {
		t.Errorf("a backend flag with an undefined profile: %v, %+v", err, r)
	}
}

func TestReadEnv(t *testing.T) {
	env := map[string]string{"CREDHELPER_MIN_VALIDITY": "90s", "CREDHELPER_SCOPES": "a, b", "CREDHELPER_INSECURE": "true", "CREDHELPER_AWS_PROFILE": "dev"}
	var p Profile
	if err := ReadEnv(ScopeProfile, &p, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if p.MinValidity.Duration != 90*time.Second || strings.Join(p.OAuth2.Scopes, "|") != "a|b" || !p.Insecure || p.AWS.Profile != "dev" {
		t.Errorf("profile from the environment = %+v", p)
	}
	env = map[string]string{"CREDHELPER_REFRESH_FRACTION": "lots"}
	err := ReadEnv(ScopeProfile, &p, func(k string) string { return env[k] })
	if err == nil || err.Error() != `$CREDHELPER_REFRESH_FRACTION: "lots" is not a number: write a number such as 0.25` {
		t.Errorf("err = %v", err)
	}
}

// TestSettingsTable holds every declaration to the table's rules.
func TestSettingsTable(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		name := string(s.Scope) + " " + s.Path
		if s.Help == "" {
			t.Errorf("%s has no help tag", name)
		}
		if s.Default != "" {
			if _, err := parseText(s.kind, s.Default); err != nil {
				t.Errorf("%s: default %q does not parse: %v", name, s.Default, err)
			}
		}
		if s.Flag != "" {
			if flags[s.Flag] {
				t.Errorf("flag --%s declared twice", s.Flag)
			}
			flags[s.Flag] = true
		}
		if s.Env != "" {
			if envs[s.Env] || !strings.HasPrefix(s.Env, EnvPrefix) {
				t.Errorf("%s: environment variable %s declared twice or without the prefix", name, s.Env)
			}
			envs[s.Env] = true
		}
		if s.Scope == ScopeProfile && s.Type != "list of strings" && s.Flag != "" && s.Env == "" {
			t.Errorf("%s has a flag but no variable", name)
		}
	}
	for _, v := range []string{EnvConfig, EnvProfile, EnvBackend, EnvIssuer, EnvEndpoint, EnvMinValidity, EnvLogLevel, EnvNoAgent, EnvFull, EnvAgentSocket, EnvAgentMetricsAddr} {
		if !envs[v] {
			t.Errorf("constant %s names no setting's variable", v)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	f, err := Load(p, false)
	if err != nil || len(f.Profiles) != 0 || !f.Missing || f.Path != p {
		t.Fatalf("implicit missing file: %+v, %v", f, err)
	}
	_, err = f.Profile("alpha")
	var ue *UnknownProfileError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "there is no config file at "+p) {
		t.Errorf("err = %v, want it to say the file is missing", err)
	}
	if ex := ue.Example(); strings.Count(ex, "\n") != 3 || !strings.HasPrefix(ex, "[profiles.alpha]\n") {
		t.Errorf("example = %q, want three lines for [profiles.alpha]", ex)
	}
	if _, err := Load(p, true); err == nil {
		t.Fatal("an explicitly named missing file was accepted")
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("CREDHELPER_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "/x")
	if got := DefaultPath(); got != "/x/credhelper/config.toml" {
		t.Errorf("DefaultPath = %q", got)
	}
	t.Setenv("CREDHELPER_CONFIG", "/y.toml")
	if got := DefaultPath(); got != "/y.toml" {
		t.Errorf("DefaultPath = %q", got)
	}
}

func TestNearest(t *testing.T) {
	for word, want := range map[string]string{"backned": "backend", "profil": "profile", "min-validity": "min_validity", "zzz": "", "isuer": "issuer"} {
		if got := Nearest(word, []string{"backend", "issuer", "profile", "min_validity"}); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", word, got, want)
		}
	}
}

// FuzzParse holds the config parser to never panicking, to one-line
// messages and to profiles that always come back from Profile.
func FuzzParse(f *testing.F) {
	entries, _ := filepath.Glob("testdata/*.toml")
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		f.Add(b)
	}
	f.Add([]byte("[profiles.a]\nbackend = \"file:x\"\n"))
	f.Add([]byte("[defaults]\nmin_validity = \"1m\"\n[plugins.x]\nsha256=\"00\"\n"))
	f.Add([]byte("[profiles.a]\nregion = 1\nvault = { role_id = 2 }\n[[profiles.a.docker]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, p := range cfg.Problems {
			if p.Msg == "" {
				t.Fatalf("a problem without a message: %+v", p)
			}
		}
		for _, n := range cfg.ProfileNames() {
			if _, err := cfg.Profile(n); err != nil {
				var pe *ProfileError
				if !errors.As(err, &pe) {
					t.Fatalf("profile %q: %v", n, err)
				}
			}
		}
	})
}

func TestParseSinks(t *testing.T) {
	f, err := Parse([]byte(`
[profiles.a]
backend = "file:/tmp/a.json"
[[profiles.a.sink]]
path = "/run/app/token"
[[profiles.a.sink]]
path = "/run/app/env"
format = "env"
mode = "0640"
command = ["systemctl", "--user", "reload", "app"]
command_timeout = "5s"
on_expiry = "remove"
[[profiles.a.sink]]
path = "~/app.conf"
format = "template"
template = "key={{.Token}}"
`))
	if err != nil || len(f.Problems) > 0 {
		t.Fatal(err, f.Problems)
	}
	p, err := f.Profile("a")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Sink
	if len(s) != 3 {
		t.Fatalf("got %d sinks, want 3", len(s))
	}
	if m, err := s[1].FileMode(); m != 0o640 || err != nil {
		t.Errorf("mode = %o, %v; want 0640", m, err)
	}
	if s[1].CommandTimeout.Duration != 5*time.Second || len(s[1].Command) != 4 || s[1].OnExpiry != SinkExpiryRemove {
		t.Errorf("sink 1 = %+v", s[1])
	}
	for _, sk := range s {
		if err := sk.Check(); err != nil {
			t.Errorf("%+v: %v", sk, err)
		}
	}
	// [defaults] sinks are not inherited.
	f, err = Parse([]byte("[defaults]\n[[defaults.sink]]\npath = \"/x\"\n[profiles.b]\nbackend = \"file:/b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Profile("b"); len(b.Sink) != 0 {
		t.Errorf("profile b inherited sinks %+v from [defaults]", b.Sink)
	}
	// A misspelt key inside a sink is a problem with its line.
	f, _ = Parse([]byte("[profiles.a]\nbackend = \"file:/a\"\n[[profiles.a.sink]]\npath = \"/x\"\nformt = \"json\"\n"))
	if len(f.Problems) != 1 || f.Problems[0].Line != 5 || !strings.Contains(f.Problems[0].Msg, "format") {
		t.Errorf("problems = %+v, want one on line 5 suggesting format", f.Problems)
	}
	bad := []struct {
		s    Sink
		want string
	}{
		{Sink{Format: "env"}, "has no path"},
		{Sink{Path: "rel/token"}, "must be absolute"},
		{Sink{Path: "/x", Format: "yaml"}, "use token, env, json or template"},
		{Sink{Path: "/x", Format: "template"}, "exactly one of template"},
		{Sink{Path: "/x", Template: "{{.Token}}"}, "need format = \"template\""},
		{Sink{Path: "/x", Mode: "640x"}, "not octal"},
		{Sink{Path: "/x", Mode: "01777"}, "not octal"},
		{Sink{Path: "/x", OnExpiry: "keep"}, "use empty or remove"},
		{Sink{Path: "/x", Command: []string{""}}, "first element is empty"},
	}
	for _, c := range bad {
		if err := c.s.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.s, err, c.want)
		}
	}
}

// TestDurationJSON: a profile handed on as JSON (the background
// refresher's request) keeps an unset duration unset and "0s" set.
func TestDurationJSON(t *testing.T) {
	var zero Duration
	if err := zero.UnmarshalText([]byte("0s")); err != nil {
		t.Fatal(err)
	}
	in := Profile{MinValidity: zero, ClockSkew: Duration{Duration: time.Second}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Profile
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.MinValidity.IsSet() || out.MinValidity.Duration != 0 || out.ClockSkew.Duration != time.Second || out.LeaseDuration.IsSet() || out.RefreshFloor.IsSet() {
		t.Errorf("round trip through %s: min_validity %+v, clock_skew %v, lease %+v, refresh_floor %+v", b, out.MinValidity, out.ClockSkew, out.LeaseDuration, out.RefreshFloor)
	}
}
