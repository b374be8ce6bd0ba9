package config

import (
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
	a, err := f.Profile("a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Issuer != "momento" || a.MinValidity.Duration != 2*time.Minute || a.LeaseDuration.Duration != 90*time.Second {
		t.Errorf("profile a = %+v, want defaults applied", a)
	}
	b, _ := f.Profile("b")
	if b.MinValidity.Duration != 5*time.Minute || b.Issuer != "oauth2:https://login.example.com/token" || len(b.Docker.ServerURLs) != 1 {
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
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"syntax", "[profiles.a\nbackend = 1", "line"},
		{"unknown key", "[profiles.a]\nbakend = \"file:x\"", "bakend"},
		{"wrong type", "[profiles.a]\nbackend = 12", "backend"},
		{"bad duration", "[profiles.a]\nmin_validity = \"soon\"", "duration"},
		{"negative duration", "[profiles.a]\nmin_validity = \"-5s\"", "duration"},
		{"bad scheme", "[profiles.a]\nbackend = \"s3:bucket\"", "unknown scheme"},
		{"empty key", "[profiles.a]\nbackend = \"file:\"", "needs a value"},
		{"bad plugin", "[profiles.a]\nbackend = \"plugin:name\"", "plugin:NAME:KEY"},
		{"fraction", "[profiles.a]\nrefresh_fraction = 1.5", "refresh_fraction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	if f, err := Load(p, false); err != nil || len(f.Profiles) != 0 {
		t.Fatalf("implicit missing file: %v", err)
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

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"file:/a/b.json":          {"file", "/a/b.json"},
		"dev:127.0.0.1:7777":      {"dev", "127.0.0.1:7777"},
		"momento":                 {"momento", ""},
		"plugin:gcp:projects/x/y": {"plugin", "gcp:projects/x/y"},
	} {
		schemes := BackendSchemes
		if want.Scheme == "dev" || want.Scheme == "momento" {
			schemes = IssuerSchemes
		}
		got, err := ParseSpec(in, schemes)
		if err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// FuzzParse holds the config parser to never panicking and to one-line
// errors.
func FuzzParse(f *testing.F) {
	entries, _ := filepath.Glob("testdata/*.toml")
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		f.Add(b)
	}
	f.Add([]byte("[profiles.a]\nbackend = \"file:x\"\n"))
	f.Add([]byte("[defaults]\nmin_validity = \"1m\"\n[plugins.x]\nsha256=\"00\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		for _, n := range cfg.ProfileNames() {
			if _, err := cfg.Profile(n); err != nil {
				t.Fatalf("a parsed profile %q does not resolve: %v", n, err)
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
mode = 0o640
command = ["systemctl", "--user", "reload", "app"]
command_timeout = "5s"
on_expiry = "remove"
[[profiles.a.sink]]
path = "~/app.conf"
format = "template"
template = "key={{.Token}}"
mode = "0644"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Profiles["a"].Sink
	if len(s) != 3 {
		t.Fatalf("got %d sinks, want 3", len(s))
	}
	if s[1].Mode != 0o640 || s[2].Mode != 0o644 || s[0].Mode != 0 {
		t.Errorf("modes %o %o %o, want 0 640 644", s[0].Mode, s[1].Mode, s[2].Mode)
	}
	if s[1].CommandTimeout.Duration != 5*time.Second || len(s[1].Command) != 4 || s[1].OnExpiry != SinkExpiryRemove {
		t.Errorf("sink 1 = %+v", s[1])
	}
	bad := []struct{ cfg, want string }{
		{"[[profiles.a.sink]]\nformat = \"env\"", "has no path"},
		{"[[profiles.a.sink]]\npath = \"rel/token\"", "must be absolute"},
		{"[[profiles.a.sink]]\npath = \"/x\"\nformat = \"yaml\"", "use token, env, json or template"},
		{"[[profiles.a.sink]]\npath = \"/x\"\nformat = \"template\"", "exactly one of template"},
		{"[[profiles.a.sink]]\npath = \"/x\"\ntemplate = \"{{.Token}}\"", "need format = \"template\""},
		{"[[profiles.a.sink]]\npath = \"/x\"\nmode = 640", "decimal 640 is not octal"},
		{"[[profiles.a.sink]]\npath = \"/x\"\nmode = \"rw\"", "not octal"},
		{"[[profiles.a.sink]]\npath = \"/x\"\non_expiry = \"keep\"", "use empty or remove"},
		{"[[profiles.a.sink]]\npath = \"/x\"\ncommand = [\"\"]", "first element is empty"},
		{"[[profiles.a.sink]]\npath = \"/x\"\n[[profiles.a.sink]]\npath = \"/x\"", "given twice"},
		{"[[profiles.a.sink]]\npath = \"/x\"\n[profiles.b]\nbackend = \"file:/b\"\n[[profiles.b.sink]]\npath = \"/x\"", "given twice (also in profile \"a\")"},
		{"[[defaults.sink]]\npath = \"/x\"", "not to [defaults]"},
	}
	for _, c := range bad {
		_, err := Parse([]byte("[profiles.a]\nbackend = \"file:/a\"\n" + c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}
