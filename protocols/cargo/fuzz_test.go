package cargo

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

const (
	fuzzToken   = "FUZZ-CARGO-AUTH-c1a4"
	fuzzRefresh = "FUZZ-CARGO-REFRESH-5e90"
)

// FuzzServe feeds arbitrary request streams and token suffixes. It checks:
// no panic, the hello first, exactly one JSON line per answer in the
// Result shape cargo decodes, a token only in Ok answers, and no refresh
// token anywhere.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"registry":{"index-url":"sparse+https://cargo.example.com/index/"},"kind":"get","operation":"read"}`,
		`{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"login","token":"t"}` + "\n" + `{"v":1,"registry":{"index-url":"x"},"kind":"logout"}`,
		`{"v":2}`, `garbage`, "\n\n", "", `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"get","args":["a","b"]}`,
	} {
		f.Add([]byte(s), "", int64(3600), false)
		f.Add([]byte(s), "\n\"", int64(-5), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, suffix string, validFor int64, fail bool) {
		now := time.Unix(1_800_000_000, 0)
		r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
			if fail {
				return provider.Pair{}, errors.New("backend down")
			}
			return provider.Pair{AuthToken: fuzzToken + suffix, RefreshToken: fuzzRefresh, ValidUntil: now.Add(time.Duration(validFor) * time.Second)}, nil
		})
		h, err := New(r, []Rule{{Profile: "crates", IndexURLs: []string{"sparse+https://cargo.example.com/index/"}, Registries: []string{"internal"}}},
			func(o *Options) { o.Now = func() time.Time { return now } })
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := h.Serve(context.Background(), bytes.NewReader(in), &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if lines[0] != `{"v":[1]}` {
			t.Fatalf("hello %q", lines[0])
		}
		for _, l := range lines[1:] {
			var res struct {
				Ok  *Token
				Err *Error
			}
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil || (res.Ok == nil) == (res.Err == nil) {
				t.Fatalf("answer %q is not one Ok or Err: %v", l, err)
			}
			if res.Err != nil && strings.Contains(l, fuzzToken) && !bytes.Contains(in, []byte(fuzzToken)) {
				t.Fatalf("error carries the token: %q", l)
			}
			if res.Ok != nil && (res.Ok.Token != fuzzToken+suffix || res.Ok.Cache == "expires" && res.Ok.Expiration == 0) {
				t.Fatalf("bad Ok %q", l)
			}
			if strings.Contains(l, fuzzRefresh) {
				t.Fatalf("refresh token in %q", l)
			}
		}
	})
}
