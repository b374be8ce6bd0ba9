package bazel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const secret = "tok-BAZEL-3c5a"

var now = time.Date(2026, 11, 27, 12, 0, 0, 400_000_000, time.UTC)

// bazelExpires is the pattern Bazel's parser accepts
// ("yyyy-MM-dd'T'HH:mm:ssXXX"): whole seconds and Z or an offset.
var bazelExpires = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$`)

func newHelper(t *testing.T) *Helper {
	t.Helper()
	r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		switch profile {
		case "never":
			return provider.Pair{AuthToken: secret + "-never"}, nil
		case "broken":
			return provider.Pair{}, provider.Transient(errors.New("backend down"))
		}
		return provider.Pair{AuthToken: secret + "-" + profile, RefreshToken: "r", ValidUntil: now.Add(time.Hour)}, nil
	})
	h, err := New(r, []Rule{
		{Profile: "wild", Hosts: []string{"*.example.com"}},
		{Profile: "deep", Hosts: []string{"*.build.example.com"}},
		{Profile: "cache", Hosts: []string{"Cache.example.com"}},
		{Profile: "port", Hosts: []string{"cache.example.com:8443"}},
		{Profile: "never", Hosts: []string{"remote.example.org"}},
		{Profile: "broken", Hosts: []string{"broken.example.org"}},
	}, func(o *Options) { o.Now = func() time.Time { return now } })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGet(t *testing.T) {
	h := newHelper(t)
	for _, tc := range []struct{ uri, profile string }{
		{"https://cache.example.com/ac/00", "cache"},
		{"grpcs://CACHE.example.com/build.bazel.remote.execution.v2.ActionCache/GetActionResult", "cache"},
		{"https://cache.example.com:8443/cas/1", "port"},
		{"https://mirror.example.com/file.tgz", "wild"},
		{"https://x.build.example.com/", "deep"},
		{"grpcs://remote.example.org:443/Service/Method", "never"},
		{"https://example.com/", ""},
		{"https://github.com/org/repo/archive.tar.gz", ""},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			var out bytes.Buffer
			in, _ := json.Marshal(Request{URI: tc.uri})
			if err := h.Serve(context.Background(), "get", bytes.NewReader(in), &out); err != nil {
				t.Fatal(err)
			}
			var res Response
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil {
				t.Fatal(err)
			}
			if tc.profile == "" {
				if res.Headers != nil || res.Expires != "" {
					t.Fatalf("unserved URI got %+v", res)
				}
				return
			}
			if got := res.Headers["Authorization"]; len(res.Headers) != 1 || len(got) != 1 || got[0] != "Bearer "+secret+"-"+tc.profile {
				t.Errorf("headers %v", res.Headers)
			}
			if tc.profile == "never" {
				if res.Expires != "" {
					t.Errorf("expires %q for a token that never expires", res.Expires)
				}
				return
			}
			if !bazelExpires.MatchString(res.Expires) {
				t.Fatalf("expires %q is not in Bazel's format", res.Expires)
			}
			if want := "2026-11-27T12:59:00Z"; res.Expires != want {
				t.Errorf("expires %q, want %q (min_validity before the expiry, whole seconds)", res.Expires, want)
			}
		})
	}
}

// TestSpecExamples checks the specification's request examples and that
// an answer without credentials is {} (which the spec equates with
// {"headers": {}}).
func TestSpecExamples(t *testing.T) {
	h := newHelper(t)
	for _, in := range []string{
		`{"uri": "grpcs://example.com/com.example.package.Service/Method"}`,
		`{"uri": "https://api.example.org/rest/endpoint"}`,
		`{"uri": "https://api.example.org/rest/endpoint", "future": [1, 2]}`,
	} {
		var out bytes.Buffer
		if err := h.Serve(context.Background(), "get", strings.NewReader(in), &out); err != nil || out.String() != "{}\n" {
			t.Errorf("%s: %q, %v", in, out.String(), err)
		}
	}
}

func TestErrors(t *testing.T) {
	h := newHelper(t)
	for _, tc := range []struct{ name, command, in string }{
		{"unknown command", "store", `{"uri":"https://cache.example.com/"}`},
		{"no command", "", `{"uri":"https://cache.example.com/"}`},
		{"empty", "get", ""},
		{"garbage", "get", "garbage"},
		{"oversized", "get", `{"uri":"https://cache.example.com/` + strings.Repeat("a", MaxInput) + `"}`},
		{"relative URI", "get", `{"uri":"/ac/00"}`},
		{"no URI", "get", `{}`},
		{"backend down", "get", `{"uri":"https://broken.example.org/"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := h.Serve(context.Background(), tc.command, strings.NewReader(tc.in), &out)
			if err == nil || out.Len() != 0 || strings.Contains(err.Error(), secret) {
				t.Fatalf("err %v, out %q", err, out.String())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, rules := range [][]Rule{
		{{Profile: "a", Hosts: []string{"https://a.example.com"}}},
		{{Profile: "a", Hosts: []string{"a.example.com/path"}}},
		{{Profile: "a", Hosts: []string{"*"}}},
		{{Profile: "a", Hosts: []string{"a.*.com"}}},
		{{Hosts: []string{"a.example.com"}}},
		{{Profile: "a", Hosts: []string{"a.example.com"}}, {Profile: "b", Hosts: []string{"A.example.com"}}},
	} {
		if _, err := New(r, rules); err == nil {
			t.Errorf("New(%+v) accepted it", rules)
		}
	}
}
