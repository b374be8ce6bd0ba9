package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/credhelper/credhelper/provider"
)

// Markers of the fuzzing resolver's secrets: an error may carry neither,
// and only get's Secret may carry the auth token.
const (
	fuzzToken   = "FUZZ-DOCKER-AUTH-5c1e"
	fuzzRefresh = "FUZZ-DOCKER-REFRESH-a93d"
)

// fuzzDeadline bounds one Serve call: input is bounded (MaxInput), so a
// call that takes this long is a hang, even on a loaded machine.
const fuzzDeadline = 10 * time.Second

// Resolver behaviours a fuzz input picks.
const (
	resolveOK = iota
	resolveEmpty
	resolveError
	resolveModes
)

// FuzzServe drives every action with arbitrary standard input (a server URL
// for get and erase, a JSON object for store), optionally padded with a
// long run of one byte to reach the input limit. It checks: no panic, no
// hang, nothing written on error, errors on one line with no secret, and
// get's answer is one JSON line whose Secret is the token.
func FuzzServe(f *testing.F) {
	for _, s := range []struct {
		action, in string
	}{
		{"get", "registry.example.com\n"},
		{"get", "https://ghcr.io/org/app"},
		{"get", "https://index.docker.io/v1/"},
		{"get", "  localhost:5000  \n"},
		{"get", "ftp://registry.example.com"},
		{"get", "user:pass@registry.example.com"},
		{"get", "https://[::1]:5000/x"},
		{"get", "%zz"},
		{"get", ""},
		{"erase", "registry.example.com"},
		{"erase", "unknown.example.com"},
		{"store", `{"ServerURL":"registry.example.com","Username":"<token>","Secret":"` + fuzzToken + `"}`},
		{"store", `{"ServerURL":"registry.example.com","Username":"<token>","Secret":"other"}`},
		{"store", `{"ServerURL":"nowhere.example.com","Username":"u","Secret":"s"}`},
		{"store", `{"ServerURL":"","Username":"u"}`},
		{"store", `{"ServerURL":"registry.example.com\n","Username":"u\u0000"}`},
		{"store", `[1,2`},
		{"list", ""},
		{"version", ""},
		{"bogus", "x"},
	} {
		f.Add(s.action, []byte(s.in), byte(0), uint32(0), "", uint8(resolveOK))
	}
	f.Add("get", []byte("registry.example.com/"), byte('a'), uint32(MaxInput), "", uint8(resolveOK))
	f.Add("get", []byte("registry.example.com/"), byte('a'), uint32(MaxInput-21), "", uint8(resolveOK))
	f.Add("store", []byte(`{"ServerURL":"registry.example.com","Username":"u","Secret":"`), byte('s'), uint32(70000), `"}`, uint8(resolveOK))
	f.Add("get", []byte("registry.example.com"), byte(0), uint32(0), "", uint8(resolveEmpty))
	f.Add("get", []byte("ghcr.io"), byte(0), uint32(0), "", uint8(resolveError))
	f.Add("store", []byte(`{"ServerURL":"ghcr.io","Username":"<token>","Secret":"x"}`), byte(0), uint32(0), "", uint8(resolveError))

	f.Fuzz(func(t *testing.T, action string, in []byte, fill byte, fillLen uint32, suffix string, mode uint8) {
		// The action is an argument docker passes, not input: a name the
		// protocol knows, or one it does not.
		switch action {
		case "get", "store", "erase", "list", "version":
		default:
			action = "bogus"
		}
		input := buildInput(in, fill, fillLen, suffix, 2*MaxInput)
		mode %= resolveModes
		r := ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
			switch mode {
			case resolveEmpty:
				return provider.Pair{RefreshToken: fuzzRefresh}, nil
			case resolveError:
				return provider.Pair{}, provider.Transient(errors.New("backend down"))
			}
			return provider.Pair{AuthToken: fuzzToken + "-" + profile, RefreshToken: fuzzRefresh}, nil
		})
		h, err := New(r, []Registry{
			{ServerURL: "registry.example.com", Profile: "reg"},
			{ServerURL: "https://index.docker.io/v1/", Profile: "hub", Username: "alice"},
			{ServerURL: "localhost:5000", Profile: "local"},
			{ServerURL: "https://ghcr.io/org", Profile: "org"},
			{ServerURL: "ghcr.io", Profile: "ghcr"},
			{ServerURL: "http://[::1]:5000/x", Profile: "v6"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = serveBounded(t, func(ctx context.Context) error {
			return h.Serve(ctx, action, bytes.NewReader(input), &out)
		})
		inputHas := func(s string) bool { return bytes.Contains(input, []byte(s)) || strings.Contains(action, s) }
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("%s failed with %v after writing %q", action, err, out.Bytes())
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("%s: error is not one line: %q", action, msg)
			}
			for _, s := range []string{fuzzToken, fuzzRefresh} {
				if strings.Contains(msg, s) && !inputHas(s) {
					t.Fatalf("%s: error carries a secret: %q", action, msg)
				}
			}
			return
		}
		got := out.String()
		if strings.Contains(got, fuzzRefresh) && !inputHas(fuzzRefresh) {
			t.Fatalf("%s: output carries the refresh token: %q", action, got)
		}
		switch action {
		case "get":
			if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
				t.Fatalf("get: answer is not one line: %q", got)
			}
			var c Credentials
			if err := json.Unmarshal(out.Bytes(), &c); err != nil {
				t.Fatalf("get: answer %q is not JSON: %v", got, err)
			}
			if !strings.HasPrefix(c.Secret, fuzzToken+"-") {
				t.Fatalf("get: Secret %q is not the resolver's token", c.Secret)
			}
			// JSON carries invalid UTF-8 as U+FFFD; docker sends text.
			if raw := bytes.TrimSpace(input); utf8.Valid(raw) && c.ServerURL != string(raw) {
				t.Fatalf("get: ServerURL %q, request %q", c.ServerURL, bytes.TrimSpace(input))
			}
			if c.Username == "" {
				t.Fatal("get: empty Username")
			}
		case "store", "erase":
			if got != "" {
				t.Fatalf("%s wrote %q", action, got)
			}
		case "list", "version":
			if strings.Contains(got, fuzzToken) {
				t.Fatalf("%s: output carries the token: %q", action, got)
			}
		default:
			t.Fatalf("unknown action %q succeeded", action)
		}
	})
}

// buildInput is in, then fillLen%max copies of fill, then suffix: a cheap
// way for the fuzzer to reach the input limits.
func buildInput(in []byte, fill byte, fillLen uint32, suffix string, max int) []byte {
	n := int(fillLen % uint32(max))
	b := make([]byte, 0, len(in)+n+len(suffix))
	b = append(b, in...)
	b = append(b, bytes.Repeat([]byte{fill}, n)...)
	return append(b, suffix...)
}

// serveBounded runs serve and fails the test if it does not return within
// fuzzDeadline.
func serveBounded(t *testing.T, serve func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	timer := time.NewTimer(fuzzDeadline)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("Serve did not return within %v", fuzzDeadline)
		return nil
	}
}
