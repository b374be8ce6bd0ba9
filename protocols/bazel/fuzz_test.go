package bazel

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

const fuzzToken = "FUZZ-BAZEL-AUTH-6d2e"

// FuzzServe feeds arbitrary commands and input. It checks: no panic,
// nothing written on error, errors without the token, and answers that
// decode strictly with expires in Bazel's format.
func FuzzServe(f *testing.F) {
	for _, s := range []string{`{"uri":"https://cache.example.com/x"}`, `{"uri":"grpcs://a.example.com:443/S/M"}`, `{"uri":"https://other.org"}`, `{}`, `garbage`, ``, `{"uri":1}`} {
		f.Add("get", []byte(s), int64(3600))
		f.Add("get", []byte(s), int64(-10))
	}
	f.Add("erase", []byte(`{}`), int64(0))
	f.Fuzz(func(t *testing.T, command string, in []byte, validFor int64) {
		now := time.Unix(1_800_000_000, 0)
		r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) {
			p := provider.Pair{AuthToken: fuzzToken, RefreshToken: "r"}
			if validFor != 0 {
				p.ValidUntil = now.Add(time.Duration(validFor) * time.Second)
			}
			return p, nil
		})
		h, err := New(r, []Rule{{Profile: "a", Hosts: []string{"*.example.com", "cache.example.com"}}}, func(o *Options) { o.Now = func() time.Time { return now } })
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = h.Serve(context.Background(), command, bytes.NewReader(in), &out)
		if err != nil {
			if out.Len() != 0 || strings.Contains(err.Error(), fuzzToken) {
				t.Fatalf("err %v, out %q", err, out.String())
			}
			return
		}
		var res Response
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			t.Fatal(err)
		}
		if res.Expires != "" && !bazelExpires.MatchString(res.Expires) {
			t.Fatalf("expires %q", res.Expires)
		}
	})
}
