package facerules

import (
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/config"
)

func TestRulesAndMinValidity(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[defaults]
min_validity = "3m"
[profiles.a]
min_validity = "90s"
[profiles.a.goauth]
url_prefixes = ["https://goproxy.example.com"]
[profiles.a.bazel]
hosts = ["cache.example.com"]
[profiles.b.cargo]
registries = ["internal"]
[profiles.b.kubelet]
match_images = ["registry.example.com"]
[profiles.b.terraform]
hosts = ["app.terraform.io"]
[profiles.c]
`))
	if err != nil {
		t.Fatal(err)
	}
	g, c, k, bz, tf := GoAuth(cfg), Cargo(cfg), Kubelet(cfg), Bazel(cfg), Terraform(cfg)
	if len(g) != 1 || g[0].Profile != "a" || len(bz) != 1 || bz[0].Profile != "a" ||
		len(c) != 1 || c[0].Profile != "b" || len(k) != 1 || k[0].Profile != "b" || len(tf) != 1 || tf[0].Profile != "b" {
		t.Errorf("rules: goauth %v cargo %v kubelet %v bazel %v terraform %v", g, c, k, bz, tf)
	}
	mv := MinValidity(cfg, config.Duration{})
	for name, want := range map[string]time.Duration{"a": 90 * time.Second, "b": 3 * time.Minute, "missing": DefaultMinValidity} {
		if got := mv(name); got != want {
			t.Errorf("MinValidity(%s) = %v, want %v", name, got, want)
		}
	}
	if got := MinValidity(cfg, config.Duration{Duration: time.Hour})("a"); got != time.Hour {
		t.Errorf("override: %v", got)
	}
	if got := MinValidity(&config.File{}, config.Duration{})("a"); got != DefaultMinValidity {
		t.Errorf("empty config: %v", got)
	}
	var zero config.Duration // --min-validity 0s: serve until expiry
	if err := zero.UnmarshalText([]byte("0s")); err != nil {
		t.Fatal(err)
	}
	if got := MinValidity(cfg, zero)("a"); got != 0 {
		t.Errorf("override 0s: %v, want 0", got)
	}
}

// TestEntryProblems: every face entry a face cannot use is one problem of
// its profile, naming the key, the value and what to write instead; the
// profile keeps its good entries (so its requests get its error), and a
// broken profile leaves the others' rules alone.
func TestEntryProblems(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[profiles.good]
backend = "file:/x"
[profiles.good.bazel]
hosts = ["cache.example.com"]
[profiles.good.goauth]
url_prefixes = ["https://go.example.com"]
[profiles.bad]
backend = "file:/y"
[profiles.bad.bazel]
hosts = ["https://bazel.example.com/path", "ok.example.com"]
[profiles.bad.terraform]
hosts = ["https://tf2.example.com"]
[profiles.bad.kubelet]
match_images = ["127.0.0.1:PORTX"]
[profiles.bad.goauth]
url_prefixes = ["http://plain.example.com", "https://GO.example.com/"]
[profiles.bad.cargo]
index_urls = ["ftp://x"]
registries = ["sparse+https://cargo.example.com/index/"]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 11: hosts entry "https://bazel.example.com/path" in [profiles.bad.bazel]: a hosts entry is a host, not a URL: write "bazel.example.com"`,
		`line 13: hosts entry "https://tf2.example.com" in [profiles.bad.terraform]: a hosts entry is a host, as Terraform passes it, not a URL: write "tf2.example.com"`,
		`line 15: match_images entry "127.0.0.1:PORTX" in [profiles.bad.kubelet]: the port is not a number: write "127.0.0.1:5000"`,
		`line 17: url_prefixes entry "http://plain.example.com" in [profiles.bad.goauth]: the go command runs GOAUTH for HTTPS only: write "https://plain.example.com"`,
		`line 17: url_prefixes entry "https://GO.example.com/" in [profiles.bad.goauth] is already in [profiles.good.goauth]: keep it in one profile`,
		`line 19: index_urls entry "ftp://x" in [profiles.bad.cargo]: not an http(s) index URL: write "sparse+https://cargo.example.com/index/"`,
		`line 20: registries entry "sparse+https://cargo.example.com/index/" in [profiles.bad.cargo]: a registry name, not an index URL (those go in index_urls): write "internal"`,
	}
	Check(cfg)
	var got []string
	for _, p := range cfg.Problems {
		if p.Scope != "profile bad" {
			t.Errorf("problem scoped to %q: %v", p.Scope, p)
		}
		got = append(got, p.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := cfg.Profile("good"); err != nil {
		t.Errorf("good: %v", err)
	}
	if u := Unusable(cfg); len(u) != 1 || u[0].Profile != "bad" {
		t.Errorf("Unusable = %v", u)
	}
	bz := Bazel(cfg)
	if len(bz) != 2 || bz[0].Profile != "bad" || len(bz[0].Hosts) != 1 || bz[0].Hosts[0] != "ok.example.com" || bz[1].Profile != "good" {
		t.Errorf("bazel rules %+v: want bad's good entry and good's", bz)
	}
	if tf := Terraform(cfg); len(tf) != 0 {
		t.Errorf("terraform rules %+v", tf)
	}
	if g := GoAuth(cfg); len(g) != 1 || g[0].Profile != "good" {
		t.Errorf("goauth rules %+v", g)
	}
}
