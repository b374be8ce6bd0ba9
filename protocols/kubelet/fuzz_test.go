package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const (
	fuzzToken   = "FUZZ-KUBELET-AUTH-4b3f"
	fuzzRefresh = "FUZZ-KUBELET-REFRESH-a90e"
)

// FuzzServe feeds arbitrary requests. It checks: no panic, nothing written
// on error, one-line errors without a secret, and that an answer decodes
// strictly, has one auth entry whose key matches the image, and a cache
// duration that parses.
func FuzzServe(f *testing.F) {
	for _, img := range []string{"registry.example.com/app:1", "cache.example.com:5000/x", "registry.example.com/team/a", "quay.io/x", "", "a\"b", "%zz"} {
		f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"`+img+`"}`), int64(3600))
	}
	f.Add([]byte("garbage"), int64(0))
	f.Add([]byte(""), int64(-1))
	f.Fuzz(func(t *testing.T, in []byte, validFor int64) {
		now := time.Unix(1_800_000_000, 0)
		r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) {
			p := provider.Pair{AuthToken: fuzzToken, RefreshToken: fuzzRefresh}
			if validFor != 0 {
				p.ValidUntil = now.Add(time.Duration(validFor) * time.Second)
			}
			return p, nil
		})
		h, err := New(r, []Rule{{Profile: "a", MatchImages: []string{"*.example.com", "*.example.com:5000"}}, {Profile: "b", MatchImages: []string{"registry.example.com/team"}}},
			func(o *Options) { o.Now = func() time.Time { return now } })
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = h.Serve(context.Background(), bytes.NewReader(in), &out)
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("failed with %v after writing %q", err, out.String())
			}
			if strings.Contains(err.Error(), fuzzToken) || strings.Contains(err.Error(), fuzzRefresh) {
				t.Fatalf("error carries a secret: %v", err)
			}
			return
		}
		var req Request
		_ = json.Unmarshal(in, &req)
		var res Response
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		if len(res.Auth) == 0 && res.CacheKeyType == CacheKeyImage && res.CacheDuration == NoMatchCacheDuration {
			return // no profile matches: no credentials
		}
		if len(res.Auth) != 1 || (res.CacheKeyType != CacheKeyImage && res.CacheKeyType != CacheKeyRegistry) {
			t.Fatalf("answer %+v", res)
		}
		for k, v := range res.Auth {
			if !MatchImage(k, req.Image) || v.Password != fuzzToken {
				t.Fatalf("auth key %q does not match image %q", k, req.Image)
			}
		}
		if res.CacheDuration != "" {
			if d, err := time.ParseDuration(res.CacheDuration); err != nil || d < 0 {
				t.Fatalf("cacheDuration %q", res.CacheDuration)
			}
		}
	})
}
