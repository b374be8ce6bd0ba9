package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	svchost "github.com/hashicorp/terraform-svchost"
	svcauth "github.com/hashicorp/terraform-svchost/auth"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
)

// TestTerraformWithHashiCorpsClient drives the built helper with the
// helper-program client Terraform itself uses.
func TestTerraformWithHashiCorpsClient(t *testing.T) {
	w := newFaceWorld(t, `
[profiles.hcp]
backend = "file:%DIR%/hcp.json"
[profiles.hcp.terraform]
hosts = ["app.terraform.io", "registry.example.com:8443"]
[profiles.broken]
backend = "file:%DIR%/missing.json"
[profiles.broken.terraform]
hosts = ["broken.example.com"]
`)
	writeRecord(t, filepath.Join(w.dir, "hcp.json"), neverPair())
	src := svcauth.HelperProgramCredentialsSource(filepath.Join(binDir, "terraform-credentials-credhelper"))

	for _, host := range []string{"app.terraform.io", "APP.Terraform.IO", "registry.example.com:8443"} {
		h, err := svchost.ForComparison(host)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := src.ForHost(h)
		if err != nil || creds == nil || creds.Token() != faceToken {
			t.Errorf("ForHost(%s): %v, %v", host, creds != nil, err)
		}
	}
	creds, err := src.ForHost(svchost.Hostname("other.example.com"))
	if err != nil || creds != nil {
		t.Errorf("unserved host: creds %v, err %v; want none and no error", creds != nil, err)
	}
	_, err = src.ForHost(svchost.Hostname("broken.example.com"))
	if err == nil || !strings.Contains(err.Error(), `profile "broken"`) {
		t.Errorf("failing profile: %v", err)
	}
	err = src.StoreForHost(svchost.Hostname("app.terraform.io"), svcauth.HostCredentialsToken("typed-"+faceRefresh))
	if err == nil || !strings.Contains(err.Error(), "credhelper put --profile hcp") {
		t.Errorf("store: %v", err)
	}
	if err := src.ForgetForHost(svchost.Hostname("other.example.com")); err != nil {
		t.Errorf("forget of an unserved host: %v", err)
	}
	if err := src.ForgetForHost(svchost.Hostname("app.terraform.io")); err == nil {
		t.Error("forget of a served host succeeded")
	}
	if err != nil {
		noFaceSecrets(t, "terraform errors", err.Error())
	}
}

// TestKubeletResponseDecodesStrictly decodes the built binary's answers
// with the kubelet's own v1 types, refusing unknown fields.
func TestKubeletResponseDecodesStrictly(t *testing.T) {
	dev, minted := startDev(t)
	w := newFaceWorld(t, `
[profiles.reg]
backend = "file:%DIR%/reg.json"
[profiles.reg.kubelet]
match_images = ["*.example.com"]
username = "robot"
[profiles.team]
backend = "file:%DIR%/team.json"
issuer = "dev:`+dev.Addr()+`"
min_validity = "2m"
[profiles.team.kubelet]
match_images = ["registry.example.com/team"]
`)
	writeRecord(t, filepath.Join(w.dir, "reg.json"), neverPair())
	writeRecord(t, filepath.Join(w.dir, "team.json"), minted)
	req := func(image string) string {
		return `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` + image + `","serviceAccountToken":"` + faceRefresh + `"}`
	}
	decode := func(out string) credentialproviderv1.CredentialProviderResponse {
		t.Helper()
		var res credentialproviderv1.CredentialProviderResponse
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		return res
	}

	r := runBin(t, w.env, req("cache.example.com/app:1"), "credhelper", "kubelet")
	if r.code != 0 {
		t.Fatalf("kubelet: %+v", r)
	}
	res := decode(r.stdout)
	if res.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || res.Kind != "CredentialProviderResponse" ||
		res.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType || res.CacheDuration != nil ||
		res.Auth["*.example.com"] != (credentialproviderv1.AuthConfig{Username: "robot", Password: faceToken}) {
		t.Errorf("never-expiring profile: %+v", res.TypeMeta)
	}

	r = runBin(t, w.env, req("registry.example.com/team/app@sha256:00"), "credhelper", "kubelet")
	if r.code != 0 {
		t.Fatalf("kubelet: %+v", r)
	}
	res = decode(r.stdout)
	// Whole seconds, worked out when the command ran, a moment before now.
	want := time.Until(minted.ValidUntil) - 2*time.Minute
	if res.CacheKeyType != credentialproviderv1.ImagePluginCacheKeyType || res.CacheDuration == nil ||
		res.CacheDuration.Duration > want+time.Second || res.CacheDuration.Duration < want-time.Minute ||
		res.Auth["registry.example.com/team"].Password != minted.AuthToken || res.Auth["registry.example.com/team"].Username != "credhelper" {
		t.Errorf("expiring profile: key type %s, duration %v (want about %v)", res.CacheKeyType, res.CacheDuration, want)
	}

	// An image no profile matches: the kubelet's "no credentials", an
	// empty auth cached a minute, exit 0.
	r = runBin(t, w.env, req("quay.io/app"), "credhelper", "kubelet")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("kubelet, unmatched image: %+v", r)
	}
	res = decode(r.stdout)
	if res.Auth == nil || len(res.Auth) != 0 || res.CacheDuration == nil || res.CacheDuration.Duration != time.Minute ||
		res.CacheKeyType != credentialproviderv1.ImagePluginCacheKeyType {
		t.Errorf("unmatched image: %s", r.stdout)
	}

	for _, tc := range []struct{ name, in string }{
		{"garbage", "garbage"},
		{"empty", ""},
		{"unknown kind", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod","image":"cache.example.com/x"}`},
		{"oversized", req(strings.Repeat("x", 2<<20))},
	} {
		r := runBin(t, w.env, tc.in, "credhelper", "kubelet")
		if r.code == 0 || r.stdout != "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || r.stderr == "" {
			t.Errorf("%s: %+v; want one line on stderr, nothing on stdout, non-zero exit", tc.name, r)
		}
		noFaceSecrets(t, tc.name, r.stderr)
	}
}

// bazelExpiresFormat is what Bazel's parser accepts
// ("yyyy-MM-dd'T'HH:mm:ssXXX").
var bazelExpiresFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$`)

// TestBazelHelper runs the built credhelper-bazel as Bazel does, with the
// specification's example requests.
func TestBazelHelper(t *testing.T) {
	_, minted := startDev(t)
	w := newFaceWorld(t, `
[profiles.cache]
backend = "file:%DIR%/cache.json"
[profiles.cache.bazel]
hosts = ["example.com", "*.example.com"]
`)
	writeRecord(t, filepath.Join(w.dir, "cache.json"), minted)
	for _, in := range []string{
		`{"uri": "grpcs://example.com/com.example.package.Service/Method"}`,
		`{"uri": "https://remote.example.com/ac/00"}`,
	} {
		r := runBin(t, w.env, in, bazelHelperName, "get")
		var res struct {
			Headers map[string][]string `json:"headers"`
			Expires string              `json:"expires"`
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if r.code != 0 || dec.Decode(&res) != nil {
			t.Fatalf("%s: %+v", in, r)
		}
		if got := res.Headers["Authorization"]; len(got) != 1 || got[0] != "Bearer "+minted.AuthToken {
			t.Errorf("%s: headers %v", in, res.Headers)
		}
		exp, err := time.Parse(time.RFC3339, res.Expires)
		if !bazelExpiresFormat.MatchString(res.Expires) || err != nil || !exp.Equal(minted.ValidUntil.Add(-time.Minute).Truncate(time.Second)) {
			t.Errorf("%s: expires %q, want %v in Bazel's format", in, res.Expires, minted.ValidUntil.Add(-time.Minute))
		}
	}
	r := runBin(t, w.env, `{"uri": "https://api.example.org/rest/endpoint"}`, bazelHelperName, "get")
	if r.code != 0 || r.stdout != "{}\n" {
		t.Errorf("unserved URI: %+v", r)
	}
	for _, tc := range []struct {
		name, in string
		args     []string
	}{
		{"no command", `{"uri":"https://example.com"}`, nil},
		{"unknown command", `{"uri":"https://example.com"}`, []string{"erase"}},
		{"garbage", "garbage", []string{"get"}},
		{"empty", "", []string{"get"}},
		{"oversized", `{"uri":"https://example.com/` + strings.Repeat("a", 1<<20) + `"}`, []string{"get"}},
	} {
		r := runBin(t, w.env, tc.in, bazelHelperName, tc.args...)
		if r.code == 0 || r.stdout != "" || r.stderr == "" {
			t.Errorf("%s: %+v", tc.name, r)
		}
		noFaceSecrets(t, tc.name, r.stderr)
	}
}

// TestBuildToolFacesBadInput: each face's malformed input gives one line
// on standard error and the tool's failure status, never a secret.
func TestBuildToolFacesBadInput(t *testing.T) {
	w := newFaceWorld(t, `
[profiles.app]
backend = "file:%DIR%/app.json"
[profiles.app.goauth]
url_prefixes = ["https://goproxy.example.com"]
[profiles.app.terraform]
hosts = ["app.terraform.io"]
`)
	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())
	for _, tc := range []struct {
		name, in string
		argv     []string
		code     int
	}{
		{"goauth garbage response", "garbage\n\n", []string{"credhelper", "goauth", "https://goproxy.example.com/x"}, 1},
		{"goauth oversized response", "HTTP/1.1 401 Unauthorized\r\nX: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", []string{"credhelper", "goauth", "https://goproxy.example.com/x"}, 1},
		{"goauth two URLs", "", []string{"credhelper", "goauth", "https://a/", "https://b/"}, 1},
		{"goauth plain http", "", []string{"credhelper", "goauth", "http://goproxy.example.com/x"}, 1},
		{"terraform unknown command", "", []string{"terraform-credentials-credhelper", "list", "app.terraform.io"}, 1},
		{"terraform no host", "", []string{"terraform-credentials-credhelper", "get"}, 1},
		{"terraform store", `{"token":"` + faceRefresh + `"}`, []string{"terraform-credentials-credhelper", "store", "app.terraform.io"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, w.env, tc.in, tc.argv[0], tc.argv[1:]...)
			if r.code != tc.code || r.stdout != "" || r.stderr == "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("%+v; want exit %d, one line on stderr", r, tc.code)
			}
			noFaceSecrets(t, tc.name, r.stderr)
		})
	}
	// Unmatched hosts answer "nothing to say" in each tool's way.
	if r := runBin(t, w.env, "HTTP/1.1 401 Unauthorized\r\n\r\n", "credhelper", "goauth", "https://other.example.com/x"); r.code != 0 || r.stdout != "" {
		t.Errorf("goauth unmatched: %+v", r)
	}
	if r := runBin(t, w.env, "", "terraform-credentials-credhelper", "get", "other.example.com"); r.code != 0 || r.stdout != "{}\n" {
		t.Errorf("terraform unmatched: %+v", r)
	}
	// An entry cargo cannot use serves nothing: cargo may ask its next
	// provider, and the entry is warned about with what to write.
	bad := newFaceWorld(t, "[profiles.app.cargo]\nindex_urls = [\"ftp://x\"]\n")
	r := runBin(t, bad.env, `{"v":1,"registry":{"index-url":"x"},"kind":"get"}`+"\n", "credhelper", cargoPluginFlag)
	if r.code != 0 || !strings.Contains(r.stdout, `{"Err":{"kind":"url-not-supported"}}`) ||
		!strings.Contains(r.stderr, `index_urls entry \"ftp://x\" in [profiles.app.cargo]: not an http(s) index URL: write \"sparse+https://cargo.example.com/index/\"`) {
		t.Errorf("cargo with a bad config: %+v", r)
	}
	// A config file that cannot be read reaches cargo inside the protocol.
	r = runBin(t, append(bad.env, "CREDHELPER_CONFIG="+filepath.Join(bad.dir, "missing.toml")), `{"v":1,"registry":{"index-url":"x"},"kind":"get"}`+"\n", "credhelper", cargoPluginFlag)
	if r.code != 0 || !strings.Contains(r.stdout, `{"Err":{"kind":"other","message":"credhelper: config: no config file at`) {
		t.Errorf("cargo with no config file: %+v", r)
	}
}
