package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// TestMatchImageKubeletTable holds the cases of the kubelet's own tests of
// its matching (pkg/credentialprovider keyring tests: URLsMatch, the glob
// keyring and its misses), restated: pattern, image, whether they match.
func TestMatchImageKubeletTable(t *testing.T) {
	for _, tc := range []struct {
		pattern, image string
		want           bool
	}{
		// no path component
		{"*.kubernetes.io", "prefix.kubernetes.io", true},
		{"prefix.*.io", "prefix.kubernetes.io", true},
		{"prefix.kubernetes.*", "prefix.kubernetes.io", true},
		{"*-good.kubernetes.io", "prefix-good.kubernetes.io", true},
		// path components
		{"*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true},
		{"prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true},
		// path components and ports
		{"*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true},
		{"prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true},
		// the number of labels differs
		{"*.kubernetes.io", "kubernetes.io", false},
		{"*.*.kubernetes.io", "prefix.kubernetes.io", false},
		{"*.*.kubernetes.io", "kubernetes.io", false},
		// some labels differ
		{"kubernetes.io", "kubernetes.com", false},
		{"k*.io", "quay.io", false},
		// ports differ
		{"*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false},
		{"prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false},
		// the glob keyring's lookups (image path /foo/bar appended)
		{"hello.kubernetes.io", "hello.kubernetes.io/foo/bar", true},
		{"*.docker.io", "prefix.docker.io/foo/bar", true},
		{"prefix.docker.*/path", "prefix.docker.io/path/foo/bar", true},
		{"*.docker.io:8888", "prefix.docker.io:8888/foo/bar", true},
		{"*.docker.io/path:1111", "prefix.docker.io/path:1111/foo/bar", true},
		{"prefix.docker.io:1111", "prefix.docker.io:1111/path/foo/bar", true},
		{"*.docker.io:1111", "prefix.docker.io:1111/path/foo/bar", true},
		// and its misses
		{"hello.kubernetes.io", "world.mesos.org/foo/bar", false},
		{"*.docker.com", "prefix.docker.io/foo/bar", false},
		{"suffix.*.io", "prefix.docker.io/foo/bar", false},
		{"prefix.docker.c*", "prefix.docker.io/foo/bar", false},
		{"prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111/foo/bar", false},
		// the path prefix is a string prefix, as in the kubelet
		{"registry.example.com/team", "registry.example.com/teamster/app", true},
		{"registry.example.com/team/", "registry.example.com/teamster/app", false},
	} {
		if got := MatchImage(tc.pattern, tc.image); got != tc.want {
			t.Errorf("MatchImage(%q, %q) = %v, want %v", tc.pattern, tc.image, got, tc.want)
		}
	}
}

const secret = "tok-KUBELET-8e21"

var now = time.Unix(1_800_000_000, 0)

func newHelper(t *testing.T, rules []Rule) *Helper {
	t.Helper()
	r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		switch profile {
		case "never":
			return provider.Pair{AuthToken: secret + "-never"}, nil
		case "broken":
			return provider.Pair{}, provider.Transient(errors.New("backend down"))
		}
		return provider.Pair{AuthToken: secret + "-" + profile, RefreshToken: "r", ValidUntil: now.Add(time.Hour + 500*time.Millisecond)}, nil
	})
	h, err := New(r, rules, func(o *Options) { o.Now = func() time.Time { return now } })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func request(image string) string {
	return `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` + image + `","serviceAccountToken":"sa-token"}`
}

func TestServe(t *testing.T) {
	h := newHelper(t, []Rule{
		{Profile: "reg", MatchImages: []string{"*.example.com"}},
		{Profile: "team", MatchImages: []string{"registry.example.com/team"}, Username: "robot"},
		{Profile: "never", MatchImages: []string{"never.example.org:5000"}},
	})
	for _, tc := range []struct {
		image, key, user, profile, cacheKey, duration string
	}{
		{"cache.example.com/app:1", "*.example.com", "credhelper", "reg", "Registry", "3540s"},
		{"registry.example.com/app:1", "*.example.com", "credhelper", "reg", "Image", "3540s"},
		{"registry.example.com/team/app@sha256:00", "registry.example.com/team", "robot", "team", "Image", "3540s"},
		{"never.example.org:5000/x", "never.example.org:5000", "credhelper", "never", "Registry", ""},
	} {
		t.Run(tc.image, func(t *testing.T) {
			var out bytes.Buffer
			if err := h.Serve(context.Background(), strings.NewReader(request(tc.image)), &out); err != nil {
				t.Fatal(err)
			}
			var res Response
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil {
				t.Fatal(err)
			}
			want := Response{APIVersion: APIVersionV1, Kind: "CredentialProviderResponse", CacheKeyType: tc.cacheKey, CacheDuration: tc.duration,
				Auth: map[string]AuthConfig{tc.key: {Username: tc.user, Password: secret + "-" + tc.profile}}}
			if res.APIVersion != want.APIVersion || res.Kind != want.Kind || res.CacheKeyType != want.CacheKeyType || res.CacheDuration != want.CacheDuration ||
				len(res.Auth) != 1 || res.Auth[tc.key] != want.Auth[tc.key] {
				t.Errorf("got %+v, want %+v", res, want)
			}
		})
	}
}

// TestServeUnmatched: an image no profile matches gets the kubelet's "no
// credentials" answer, an empty auth with a short cache, exit status 0.
func TestServeUnmatched(t *testing.T) {
	h := newHelper(t, []Rule{{Profile: "reg", MatchImages: []string{"registry.example.com"}}})
	var out bytes.Buffer
	if err := h.Serve(context.Background(), strings.NewReader(request("quay.io/x")), &out); err != nil {
		t.Fatal(err)
	}
	want := `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"60s","auth":{}}` + "\n"
	if out.String() != want {
		t.Errorf("got %s\nwant %s", out.String(), want)
	}
}

func TestServeErrors(t *testing.T) {
	h := newHelper(t, []Rule{
		{Profile: "reg", MatchImages: []string{"registry.example.com"}},
		{Profile: "broken", MatchImages: []string{"broken.example.com"}},
		{Profile: "tie1", MatchImages: []string{"*.tie.example"}},
		{Profile: "tie2", MatchImages: []string{"a.*.example"}},
	})
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrBadRequest},
		{"garbage", "garbage", ErrBadRequest},
		{"oversized", request(strings.Repeat("a", MaxInput)), face.ErrTooLarge},
		{"apiVersion", `{"apiVersion":"v9","kind":"CredentialProviderRequest","image":"registry.example.com/x"}`, ErrBadRequest},
		{"kind", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod","image":"registry.example.com/x"}`, ErrBadRequest},
		{"no image", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}`, ErrBadRequest},
		{"backend down", request("broken.example.com/x"), nil},
		{"ambiguous", request("a.tie.example/x"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := h.Serve(context.Background(), strings.NewReader(tc.in), &out)
			if err == nil || out.Len() != 0 || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err %v, out %q; want %v", err, out.String(), tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "sa-token") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, rules := range [][]Rule{
		{{Profile: "a", MatchImages: []string{"https://registry.example.com"}}},
		{{Profile: "a", MatchImages: []string{"[.example.com"}}},
		{{Profile: "a", MatchImages: []string{""}}},
		{{Profile: "a", MatchImages: []string{"x.io"}, Username: "a\nb"}},
		{{MatchImages: []string{"x.io"}}},
		{{Profile: "a", MatchImages: []string{"x.io"}}, {Profile: "b", MatchImages: []string{"x.io"}}},
	} {
		if _, err := New(r, rules); err == nil {
			t.Errorf("New(%+v) accepted it", rules)
		}
	}
}
