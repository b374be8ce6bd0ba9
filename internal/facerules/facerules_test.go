package facerules

import (
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
	g, _ := GoAuth(cfg)
	c, _ := Cargo(cfg)
	k, _ := Kubelet(cfg)
	bz, _ := Bazel(cfg)
	tf, _ := Terraform(cfg)
	if len(g) != 1 || g[0].Profile != "a" || len(bz) != 1 || bz[0].Profile != "a" ||
		len(c) != 1 || c[0].Profile != "b" || len(k) != 1 || k[0].Profile != "b" || len(tf) != 1 || tf[0].Profile != "b" {
		t.Errorf("rules: goauth %v cargo %v kubelet %v bazel %v terraform %v", g, c, k, bz, tf)
	}
	mv := MinValidity(cfg, 0)
	for name, want := range map[string]time.Duration{"a": 90 * time.Second, "b": 3 * time.Minute, "missing": DefaultMinValidity} {
		if got := mv(name); got != want {
			t.Errorf("MinValidity(%s) = %v, want %v", name, got, want)
		}
	}
	if got := MinValidity(cfg, time.Hour)("a"); got != time.Hour {
		t.Errorf("override: %v", got)
	}
	if got := MinValidity(&config.File{}, 0)("a"); got != DefaultMinValidity {
		t.Errorf("empty config: %v", got)
	}
}
