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

const secret = "tok-CARGO-0b7d"

var now = time.Unix(1_800_000_000, 0)

func newHelper(t *testing.T) *Helper {
	t.Helper()
	r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		switch profile {
		case "never":
			return provider.Pair{AuthToken: secret + "-never"}, nil
		case "broken":
			return provider.Pair{}, provider.Transient(errors.New("backend down"))
		case "dying":
			return provider.Pair{AuthToken: secret + "-dying", RefreshToken: "r", ValidUntil: now.Add(30 * time.Second)}, nil
		}
		return provider.Pair{AuthToken: secret + "-" + profile, RefreshToken: "r", ValidUntil: now.Add(time.Hour)}, nil
	})
	h, err := New(r, []Rule{
		{Profile: "crates", IndexURLs: []string{"sparse+https://Cargo.Example.com/index/"}, Registries: []string{"internal"}},
		{Profile: "never", Registries: []string{"forever"}},
		{Profile: "broken", Registries: []string{"down"}},
		{Profile: "dying", Registries: []string{"dying"}},
	}, func(o *Options) {
		o.Now = func() time.Time { return now }
		o.MinValidity = func(string) time.Duration { return 2 * time.Minute }
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// session runs Serve over lines and returns the answers after the hello.
func session(t *testing.T, h *Helper, lines ...string) []string {
	t.Helper()
	var out bytes.Buffer
	if err := h.Serve(context.Background(), strings.NewReader(strings.Join(lines, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if got[0] != `{"v":[1]}` {
		t.Fatalf("hello %q", got[0])
	}
	return got[1:]
}

func TestGet(t *testing.T) {
	h := newHelper(t)
	get := func(registry string) string {
		return `{"v":1,"registry":` + registry + `,"kind":"get","operation":"read","args":[]}`
	}
	got := session(t, h,
		get(`{"index-url":"sparse+https://cargo.example.com/index"}`),
		get(`{"index-url":"https://cargo.example.com/index/","name":"whatever"}`),
		get(`{"index-url":"sparse+https://elsewhere.example.com/","name":"internal"}`),
		get(`{"index-url":"https://index.crates.io/","name":"crates-io"}`),
		get(`{"index-url":"sparse+https://x/","name":"forever"}`),
		get(`{"index-url":"sparse+https://x/","name":"dying"}`),
		`{"v":1,"registry":{"index-url":"sparse+https://x/","name":"internal"},"kind":"get","operation":"publish","name":"c","vers":"1.0.0","cksum":"00","args":["cargo"]}`,
	)
	exp := now.Add(time.Hour - 2*time.Minute).Unix()
	want := []string{
		`{"Ok":{"kind":"get","token":"` + secret + `-crates","cache":"expires","expiration":` + itoa(exp) + `,"operation_independent":true}}`,
		`{"Ok":{"kind":"get","token":"` + secret + `-crates","cache":"expires","expiration":` + itoa(exp) + `,"operation_independent":true}}`,
		`{"Ok":{"kind":"get","token":"` + secret + `-crates","cache":"expires","expiration":` + itoa(exp) + `,"operation_independent":true}}`,
		`{"Err":{"kind":"url-not-supported"}}`,
		`{"Ok":{"kind":"get","token":"` + secret + `-never","cache":"session","operation_independent":true}}`,
		`{"Ok":{"kind":"get","token":"` + secret + `-dying","cache":"never","operation_independent":true}}`,
		`{"Ok":{"kind":"get","token":"` + secret + `-crates","cache":"expires","expiration":` + itoa(exp) + `,"operation_independent":true}}`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d answers: %q", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestErrorsAreAnswers(t *testing.T) {
	h := newHelper(t)
	for _, tc := range []struct {
		name, line, kind, says string
	}{
		{"login", `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"login","token":"` + secret + `-typed"}`, KindOperationNotSupported, "credhelper put --profile crates"},
		{"logout", `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"logout"}`, KindOperationNotSupported, "credhelper put"},
		{"login elsewhere", `{"v":1,"registry":{"index-url":"sparse+https://other/"},"kind":"login"}`, KindURLNotSupported, ""},
		{"unknown kind", `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"frobnicate"}`, KindOperationNotSupported, "get requests only"},
		{"version", `{"v":2,"registry":{"index-url":"x","name":"internal"},"kind":"get"}`, KindOther, "version 2"},
		{"garbage", `not json`, KindOther, "not the JSON object"},
		{"empty object", `{}`, KindOther, "version 0"},
		{"args", `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"get","args":["--profile","x"]}`, KindOther, "unexpected provider arguments"},
		{"backend down", `{"v":1,"registry":{"index-url":"x","name":"down"},"kind":"get","operation":"read"}`, KindOther, "backend down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := session(t, h, tc.line)
			if len(got) != 1 {
				t.Fatalf("answers %q", got)
			}
			var r struct{ Err *Error }
			if err := json.Unmarshal([]byte(got[0]), &r); err != nil || r.Err == nil {
				t.Fatalf("answer %q is not an error", got[0])
			}
			if r.Err.Kind != tc.kind || !strings.Contains(r.Err.Message, tc.says) {
				t.Errorf("error %+v, want kind %s saying %q", r.Err, tc.kind, tc.says)
			}
			if strings.Contains(got[0], secret) {
				t.Errorf("error answer carries a secret: %s", got[0])
			}
		})
	}
}

func TestInputLimits(t *testing.T) {
	h := newHelper(t)
	if got := session(t, h); len(got) != 0 {
		t.Errorf("empty input answered %q", got)
	}
	got := session(t, h, `{"v":1,"registry":{"index-url":"`+strings.Repeat("a", MaxLine)+`"},"kind":"get"}`, `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"get"}`)
	if len(got) != 1 || !strings.Contains(got[0], "over") {
		t.Errorf("oversized line answered %q; want one error and an end", got)
	}
	var out bytes.Buffer
	if err := Failing(errors.New("config: line 3: bad")).Serve(context.Background(), strings.NewReader(`{"v":1}`+"\n"), &out); err != nil || !strings.Contains(out.String(), `"message":"credhelper: config: line 3: bad"`) {
		t.Errorf("Failing: %v %q", err, out.String())
	}
}

func TestNewRefuses(t *testing.T) {
	r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, rules := range [][]Rule{
		{{Profile: "a", IndexURLs: []string{"git@github.com:x/y"}}},
		{{Profile: "a", IndexURLs: []string{"sparse+ftp://x/"}}},
		{{Profile: "a", Registries: []string{"a b"}}},
		{{Registries: []string{"a"}}},
		{{Profile: "a", Registries: []string{"x"}}, {Profile: "b", Registries: []string{"x"}}},
		{{Profile: "a", IndexURLs: []string{"sparse+https://h/i/"}}, {Profile: "b", IndexURLs: []string{"https://H/i"}}},
	} {
		if _, err := New(r, rules); err == nil {
			t.Errorf("New(%+v) accepted it", rules)
		}
	}
}
