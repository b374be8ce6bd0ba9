package facerules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/protocols/bazel"
	"github.com/credhelper/credhelper/protocols/cargo"
	"github.com/credhelper/credhelper/protocols/docker"
	"github.com/credhelper/credhelper/protocols/git"
	"github.com/credhelper/credhelper/protocols/goauth"
	"github.com/credhelper/credhelper/protocols/kubelet"
	"github.com/credhelper/credhelper/protocols/terraform"
)

// DefaultMinValidity is the refresh engine's default minimum validity,
// used when neither a flag nor the profile sets one.
const DefaultMinValidity = time.Minute

// MinValidity returns, per profile, what the faces subtract from a token's
// expiry when they tell a tool how long to cache it: override when set
// (--min-validity, "0s" included), else the profile's min_validity, else
// DefaultMinValidity.
func MinValidity(cfg *config.File, override config.Duration) func(string) time.Duration {
	return func(name string) time.Duration {
		if override.IsSet() {
			return override.Duration
		}
		if p, err := cfg.Profile(name); err == nil && p.MinValidity.IsSet() {
			return p.MinValidity.Duration
		}
		return DefaultMinValidity
	}
}

// entry is one value of a face's list setting, and the key the face
// matches it by (two profiles may not claim the same key).
type entry struct {
	table, key string // e.g. "bazel", "hosts"
	value      string
	claim      string // "" when the value is not claimed exclusively
}

// faces lists, per profile, every face entry it configures, with the
// check of the protocol that reads it.
var faces = []struct {
	entries func(p config.Profile) []entry
	check   func(e entry) error
}{
	{func(p config.Profile) []entry { return list("docker", "server_urls", p.Docker.ServerURLs, dockerKey) }, func(e entry) error { return docker.CheckServerURL(e.value) }},
	{func(p config.Profile) []entry { return one("docker", "username", p.Docker.Username) }, func(e entry) error { return docker.CheckUsername(e.value) }},
	{func(p config.Profile) []entry { return one("git", "host", p.Git.Host) }, func(e entry) error { return git.CheckHost(e.value) }},
	{func(p config.Profile) []entry {
		return append(append(one("git", "protocol", p.Git.Protocol), one("git", "path", p.Git.Path)...), one("git", "username", p.Git.Username)...)
	}, func(e entry) error { return git.CheckSetting(e.value) }},
	{func(p config.Profile) []entry { return list("goauth", "url_prefixes", p.GoAuth.URLPrefixes, urlKey) }, func(e entry) error { return goauth.CheckURLPrefix(e.value) }},
	{func(p config.Profile) []entry { return one("goauth", "username", p.GoAuth.Username) }, func(e entry) error { return goauth.CheckUsername(e.value) }},
	{func(p config.Profile) []entry { return list("cargo", "index_urls", p.Cargo.IndexURLs, urlKey) }, func(e entry) error { return cargo.CheckIndexURL(e.value) }},
	{func(p config.Profile) []entry { return list("cargo", "registries", p.Cargo.Registries, same) }, func(e entry) error { return cargo.CheckRegistry(e.value) }},
	{func(p config.Profile) []entry { return list("kubelet", "match_images", p.Kubelet.MatchImages, same) }, func(e entry) error { return kubelet.CheckPattern(e.value) }},
	{func(p config.Profile) []entry { return one("kubelet", "username", p.Kubelet.Username) }, func(e entry) error { return kubelet.CheckUsername(e.value) }},
	{func(p config.Profile) []entry { return list("bazel", "hosts", p.Bazel.Hosts, lower) }, func(e entry) error { return bazel.CheckHost(e.value) }},
	{func(p config.Profile) []entry { return list("terraform", "hosts", p.Terraform.Hosts, lower) }, func(e entry) error { return terraform.CheckHost(e.value) }},
}

func list(table, key string, values []string, claim func(string) string) []entry {
	out := make([]entry, 0, len(values))
	for _, v := range values {
		out = append(out, entry{table: table, key: key, value: v, claim: claim(v)})
	}
	return out
}

func one(table, key, value string) []entry {
	if value == "" {
		return nil
	}
	return []entry{{table: table, key: key, value: value}}
}

func same(v string) string { return v }

// dockerKey folds the forms of one registry docker treats alike.
func dockerKey(v string) string {
	if _, rest, ok := strings.Cut(v, "://"); ok {
		v = rest
	}
	host, path, _ := strings.Cut(v, "/")
	return strings.ToLower(host) + "/" + strings.TrimRight(path, "/")
}

func lower(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

// urlKey folds the forms of one URL the protocols treat alike: with or
// without https:// or sparse+, a trailing slash, the host's case.
func urlKey(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "sparse+")
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		scheme, rest = "https", v
	}
	host, path, _ := strings.Cut(rest, "/")
	return strings.ToLower(scheme+"://"+host) + "/" + strings.TrimRight(path, "/")
}

// scan checks every face entry of every profile; bad holds the entries no
// face uses (by entryID).
func scan(cfg *config.File) (problems []config.Problem, bad map[string]bool) {
	bad = map[string]bool{}
	claimed := map[string]string{} // table.key\x00claim -> profile
	// In file order: of two profiles claiming one entry, the later is wrong.
	names := cfg.ProfileNames()
	sort.SliceStable(names, func(i, j int) bool { return cfg.Line("profiles", names[i]) < cfg.Line("profiles", names[j]) })
	for _, name := range names {
		own := cfg.Profiles[name] // face tables are not inherited
		for _, f := range faces {
			for _, e := range f.entries(own) {
				where := fmt.Sprintf("[profiles.%s.%s]", name, e.table)
				var msg string
				if err := f.check(e); err != nil {
					msg = fmt.Sprintf("%s entry %q in %s: %v", e.key, e.value, where, err)
				} else if e.claim != "" {
					k := e.table + "." + e.key + "\x00" + e.claim
					if other, dup := claimed[k]; dup && other != name {
						msg = fmt.Sprintf("%s entry %q in %s is already in [profiles.%s.%s]: keep it in one profile", e.key, e.value, where, other, e.table)
					} else {
						claimed[k] = name
					}
				}
				if msg != "" {
					bad[entryID(name, e)] = true
					problems = append(problems, config.Problem{File: cfg.Path, Line: cfg.Line("profiles", name, e.table, e.key), Scope: "profile " + name, Msg: msg})
				}
			}
		}
	}
	return problems, bad
}

func entryID(profile string, e entry) string {
	return strings.Join([]string{profile, e.table, e.key, e.value}, "\x00")
}

// Problems checks every face entry of every profile with the check of the
// protocol that reads it, and returns one problem for each entry a face
// cannot use (naming the profile, the key and the value, and saying what
// to write instead) or that another profile already claims. Each is
// scoped to its profile, so that, added to the file's problems, it makes
// that profile unusable and no other.
func Problems(cfg *config.File) []config.Problem {
	ps, _ := scan(cfg)
	return ps
}

// Check adds Problems(cfg) to cfg.Problems, in line order. Every command
// that loads a configuration calls it once, so that a face entry no face
// can use is found by `credhelper config check` and at load, and fails
// its profile like any other mistake.
func Check(cfg *config.File) {
	ps := Problems(cfg)
	if len(ps) == 0 {
		return
	}
	cfg.Problems = append(cfg.Problems, ps...)
	sort.SliceStable(cfg.Problems, func(i, j int) bool { return cfg.Problems[i].Line < cfg.Problems[j].Line })
}

// Unusable returns, in name order, the error (a *config.ProfileError) of
// every profile of cfg that cannot be used because of a problem in the
// file. The faces answer the requests such a profile would answer with
// its error, and warn about the others.
func Unusable(cfg *config.File) []*config.ProfileError {
	var out []*config.ProfileError
	for _, name := range cfg.ProfileNames() {
		var pe *config.ProfileError
		if _, err := cfg.Profile(name); errors.As(err, &pe) {
			out = append(out, pe)
		}
	}
	return out
}

// usable returns the values of profile name's table.key that its face
// can use: those the protocol's check accepts and no other profile
// claimed first. A profile with problems keeps its usable entries, so that
// the requests it would answer are answered with its error rather than
// passed on to another helper.
func usable(cfg *config.File, bad map[string]bool, name, table, key string) []string {
	var out []string
	for _, f := range faces {
		for _, e := range f.entries(cfg.Profiles[name]) {
			if e.table == table && e.key == key && !bad[entryID(name, e)] {
				out = append(out, e.value)
			}
		}
	}
	return out
}

// build returns mk(name, values) for every profile with usable values of
// table.key, in name order.
func build[R any](cfg *config.File, table, key string, mk func(name string, own config.Profile, values []string) R) []R {
	var rules []R
	_, bad := scan(cfg)
	for _, name := range cfg.ProfileNames() {
		if values := usable(cfg, bad, name, table, key); len(values) > 0 {
			rules = append(rules, mk(name, cfg.Profiles[name], values))
		}
	}
	return rules
}

// checked returns v, or "" when check refuses it (a problem of its
// profile already says so).
func checked(v string, check func(string) error) string {
	if check(v) != nil {
		return ""
	}
	return v
}

// GoAuth returns a rule for every profile with goauth.url_prefixes.
func GoAuth(cfg *config.File) []goauth.Rule {
	return build(cfg, "goauth", "url_prefixes", func(name string, own config.Profile, prefixes []string) goauth.Rule {
		return goauth.Rule{Profile: name, URLPrefixes: prefixes, Username: checked(own.GoAuth.Username, goauth.CheckUsername)}
	})
}

// Cargo returns a rule for every profile with cargo.registries or
// cargo.index_urls.
func Cargo(cfg *config.File) []cargo.Rule {
	var rules []cargo.Rule
	_, bad := scan(cfg)
	for _, name := range cfg.ProfileNames() {
		urls, regs := usable(cfg, bad, name, "cargo", "index_urls"), usable(cfg, bad, name, "cargo", "registries")
		if len(urls)+len(regs) > 0 {
			rules = append(rules, cargo.Rule{Profile: name, IndexURLs: urls, Registries: regs})
		}
	}
	return rules
}

// Kubelet returns a rule for every profile with kubelet.match_images.
func Kubelet(cfg *config.File) []kubelet.Rule {
	return build(cfg, "kubelet", "match_images", func(name string, own config.Profile, images []string) kubelet.Rule {
		return kubelet.Rule{Profile: name, MatchImages: images, Username: checked(own.Kubelet.Username, kubelet.CheckUsername)}
	})
}

// Bazel returns a rule for every profile with bazel.hosts.
func Bazel(cfg *config.File) []bazel.Rule {
	return build(cfg, "bazel", "hosts", func(name string, _ config.Profile, hosts []string) bazel.Rule {
		return bazel.Rule{Profile: name, Hosts: hosts}
	})
}

// Terraform returns a rule for every profile with terraform.hosts.
func Terraform(cfg *config.File) []terraform.Rule {
	return build(cfg, "terraform", "hosts", func(name string, _ config.Profile, hosts []string) terraform.Rule {
		return terraform.Rule{Profile: name, Hosts: hosts}
	})
}

// Docker returns the registries of every profile's docker.server_urls.
func Docker(cfg *config.File) []docker.Registry {
	var regs []docker.Registry
	_, bad := scan(cfg)
	for _, name := range cfg.ProfileNames() {
		user := checked(cfg.Profiles[name].Docker.Username, docker.CheckUsername)
		for _, u := range usable(cfg, bad, name, "docker", "server_urls") {
			regs = append(regs, docker.Registry{ServerURL: u, Username: user, Profile: name})
		}
	}
	return regs
}

// Git returns a rule for every profile with a usable git.host.
func Git(cfg *config.File) []git.Rule {
	var rules []git.Rule
	_, bad := scan(cfg)
	for _, name := range cfg.ProfileNames() {
		g := cfg.Profiles[name].Git
		if len(usable(cfg, bad, name, "git", "host")) == 0 ||
			len(usable(cfg, bad, name, "git", "protocol"))+len(usable(cfg, bad, name, "git", "path"))+len(usable(cfg, bad, name, "git", "username")) <
				len(one("git", "protocol", g.Protocol))+len(one("git", "path", g.Path))+len(one("git", "username", g.Username)) {
			continue // a setting that cannot be sent to git: its requests go to the next helper
		}
		rules = append(rules, git.Rule{Profile: name, Protocol: g.Protocol, Host: g.Host, Path: g.Path, Username: g.Username})
	}
	return rules
}
