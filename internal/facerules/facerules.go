package facerules

import (
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/protocols/bazel"
	"github.com/credhelper/credhelper/protocols/cargo"
	"github.com/credhelper/credhelper/protocols/goauth"
	"github.com/credhelper/credhelper/protocols/kubelet"
	"github.com/credhelper/credhelper/protocols/terraform"
)

// DefaultMinValidity is the refresh engine's default minimum validity,
// used when neither a flag nor the profile sets one.
const DefaultMinValidity = time.Minute

// MinValidity returns, per profile, what the faces subtract from a token's
// expiry when they tell a tool how long to cache it: override when
// positive (--min-validity), else the profile's min_validity, else
// DefaultMinValidity.
func MinValidity(cfg *config.File, override time.Duration) func(string) time.Duration {
	return func(name string) time.Duration {
		if override > 0 {
			return override
		}
		if p, err := cfg.Profile(name); err == nil && p.MinValidity.Duration > 0 {
			return p.MinValidity.Duration
		}
		return DefaultMinValidity
	}
}

// each calls fn with every profile, defaults applied, in name order.
func each(cfg *config.File, fn func(name string, p config.Profile)) error {
	for _, name := range cfg.ProfileNames() {
		p, err := cfg.Profile(name)
		if err != nil {
			return err
		}
		fn(name, p)
	}
	return nil
}

// GoAuth returns a rule for every profile with goauth.url_prefixes.
func GoAuth(cfg *config.File) ([]goauth.Rule, error) {
	var rules []goauth.Rule
	err := each(cfg, func(name string, p config.Profile) {
		if len(p.GoAuth.URLPrefixes) > 0 {
			rules = append(rules, goauth.Rule{Profile: name, URLPrefixes: p.GoAuth.URLPrefixes, Username: p.GoAuth.Username})
		}
	})
	return rules, err
}

// Cargo returns a rule for every profile with cargo.registries or
// cargo.index_urls.
func Cargo(cfg *config.File) ([]cargo.Rule, error) {
	var rules []cargo.Rule
	err := each(cfg, func(name string, p config.Profile) {
		if len(p.Cargo.IndexURLs)+len(p.Cargo.Registries) > 0 {
			rules = append(rules, cargo.Rule{Profile: name, IndexURLs: p.Cargo.IndexURLs, Registries: p.Cargo.Registries})
		}
	})
	return rules, err
}

// Kubelet returns a rule for every profile with kubelet.match_images.
func Kubelet(cfg *config.File) ([]kubelet.Rule, error) {
	var rules []kubelet.Rule
	err := each(cfg, func(name string, p config.Profile) {
		if len(p.Kubelet.MatchImages) > 0 {
			rules = append(rules, kubelet.Rule{Profile: name, MatchImages: p.Kubelet.MatchImages, Username: p.Kubelet.Username})
		}
	})
	return rules, err
}

// Bazel returns a rule for every profile with bazel.hosts.
func Bazel(cfg *config.File) ([]bazel.Rule, error) {
	var rules []bazel.Rule
	err := each(cfg, func(name string, p config.Profile) {
		if len(p.Bazel.Hosts) > 0 {
			rules = append(rules, bazel.Rule{Profile: name, Hosts: p.Bazel.Hosts})
		}
	})
	return rules, err
}

// Terraform returns a rule for every profile with terraform.hosts.
func Terraform(cfg *config.File) ([]terraform.Rule, error) {
	var rules []terraform.Rule
	err := each(cfg, func(name string, p config.Profile) {
		if len(p.Terraform.Hosts) > 0 {
			rules = append(rules, terraform.Rule{Profile: name, Hosts: p.Terraform.Hosts})
		}
	})
	return rules, err
}
