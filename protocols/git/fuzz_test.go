package git

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Markers of the fuzzing resolver's secrets: an error may carry neither,
// and only the password attribute may carry the auth token.
const (
	fuzzToken   = "FUZZ-GIT-AUTH-3b8f"
	fuzzRefresh = "FUZZ-GIT-REFRESH-e217"
)

// fuzzDeadline bounds one Serve call: input is bounded (maxRequest), so a
// call that takes this long is a hang, even on a loaded machine.
const fuzzDeadline = 10 * time.Second

// Resolver behaviours a fuzz input picks.
const (
	resolveOK = iota
	resolveNever
	resolveEmpty
	resolveError
	resolveModes
)

// FuzzServe drives the credential protocol with arbitrary key=value
// streams (url= expansion, CRLF, NUL, lines padded with a long run of one
// byte up to and past MaxLine and maxRequest) and arbitrary tokens from
// the resolver (a suffix that may hold a newline or NUL). It checks: no
// panic, no hang, nothing written on error, errors on one line with no
// secret, and get's answer is well-formed lines with the token only as the
// password.
func FuzzServe(f *testing.F) {
	for _, in := range []string{
		"protocol=https\nhost=git.example.com\n\n",
		"protocol=HTTPS\nhost=Git.Example.com",
		"protocol=https\nhost=git.example.com\npath=org/team/app.git\nusername=bob\n\n",
		"url=https://bob@git.example.com/org/x\n\n",
		"url=https://git.example.com/tie/x\n\n",
		"url=https://git.example.com/org/a%0Ab\n\n",
		"url=https://git.example.com/tie/a%0Ab\n\n",
		"url=https://b%0Aob@git.example.com/\n\n",
		"url=https://git.example.com:8443/\n",
		"url=git.example.com\n",
		"url=mailto:x@y\n",
		"protocol=https\r\nhost=git.example.com\r\n\r\n",
		"protocol=https\nhost=git.example.com\x00\n",
		"protocol=https\nhost=git.exa\rmple.com\n",
		"capability[]=authtype\nwwwauth[]=Basic realm=x\nprotocol=http\nhost=localhost:8080\n\n",
		"noequals\n",
		"=\n",
		"\n",
		"",
	} {
		f.Add("get", []byte(in), byte(0), uint32(0), "\n", "", int64(1900000000), uint8(resolveOK))
	}
	f.Add("store", []byte("protocol=https\nhost=git.example.com\npassword="+fuzzToken+"\n"), byte(0), uint32(0), "", "", int64(0), uint8(resolveOK))
	f.Add("erase", []byte("protocol=https\n"), byte(0), uint32(0), "", "", int64(0), uint8(resolveOK))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\npath="), byte('a'), uint32(MaxLine-5), "\n", "", int64(0), uint8(resolveNever))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\npath="), byte('a'), uint32(MaxLine-4), "\r\n", "", int64(0), uint8(resolveNever))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\npath="), byte('a'), uint32(MaxLine), "\n", "", int64(0), uint8(resolveNever))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n"), byte('\n'), uint32(maxRequest+1), "", "", int64(0), uint8(resolveOK))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n\n"), byte(0), uint32(0), "", "\nprotocol=evil", int64(0), uint8(resolveOK))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n\n"), byte(0), uint32(0), "", "\x00", int64(0), uint8(resolveOK))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n\n"), byte(0), uint32(0), "", "", int64(0), uint8(resolveEmpty))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n\n"), byte(0), uint32(0), "", "", int64(0), uint8(resolveError))
	f.Add("get", []byte("protocol=https\nhost=git.example.com\n\n"), byte(0), uint32(0), "", "", int64(-1<<62), uint8(resolveOK))

	f.Fuzz(func(t *testing.T, action string, in []byte, fill byte, fillLen uint32, suffix string, tokenSuffix string, validUntil int64, mode uint8) {
		input := append(append(append([]byte{}, in...), bytes.Repeat([]byte{fill}, int(fillLen%(maxRequest+2)))...), suffix...)
		mode %= resolveModes
		r := ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
			switch mode {
			case resolveNever:
				return provider.Pair{AuthToken: fuzzToken + "-" + profile + tokenSuffix, RefreshToken: fuzzRefresh}, nil
			case resolveEmpty:
				return provider.Pair{RefreshToken: fuzzRefresh}, nil
			case resolveError:
				return provider.Pair{}, provider.Transient(errors.New("backend down"))
			}
			return provider.Pair{AuthToken: fuzzToken + "-" + profile + tokenSuffix, RefreshToken: fuzzRefresh, ValidUntil: time.Unix(validUntil, 0)}, nil
		})
		h, err := New(r, []Rule{
			{Profile: "host", Host: "git.example.com"},
			{Profile: "org", Host: "git.example.com", Path: "org/"},
			{Profile: "team", Host: "git.example.com", Path: "/org/team"},
			{Profile: "bob", Host: "git.example.com", Path: "org", Username: "bob"},
			{Profile: "never", Host: "localhost:8080", Protocol: "HTTP", Username: "ci"},
			{Profile: "tie1", Host: "git.example.com", Path: "tie"},
			{Profile: "tie2", Host: "git.example.com", Path: "tie"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- h.Serve(ctx, action, bytes.NewReader(input), &out) }()
		timer := time.NewTimer(fuzzDeadline)
		defer timer.Stop()
		select {
		case err = <-done:
		case <-timer.C:
			t.Fatalf("Serve did not return within %v", fuzzDeadline)
		}

		inputHas := func(s string) bool { return bytes.Contains(input, []byte(s)) || strings.Contains(action, s) }
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("failed with %v after writing %q", err, out.Bytes())
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r\x00") {
				t.Fatalf("error is not one line: %q", msg)
			}
			for _, s := range []string{fuzzToken, fuzzRefresh} {
				if strings.Contains(msg, s) && !inputHas(s) {
					t.Fatalf("error carries a secret: %q", msg)
				}
			}
			return
		}
		got := out.String()
		if action != "get" {
			if got != "" {
				t.Fatalf("%s wrote %q", action, got)
			}
			return
		}
		if !strings.HasSuffix(got, "\n") {
			t.Fatalf("answer does not end in a newline: %q", got)
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			key, value, ok := strings.Cut(line, "=")
			if !ok || seen[key] || strings.ContainsRune(value, 0) {
				t.Fatalf("malformed answer %q", got)
			}
			seen[key] = true
			switch key {
			case "username":
				if value == "" {
					t.Fatalf("empty username in %q", got)
				}
			case "password":
				if !strings.HasPrefix(value, fuzzToken+"-") || !strings.HasSuffix(value, tokenSuffix) {
					t.Fatalf("password %q is not the resolver's token", value)
				}
			case "password_expiry_utc":
				if mode == resolveNever {
					t.Fatalf("expiry %q for a token that never expires", value)
				}
				if _, err := strconv.ParseInt(value, 10, 64); err != nil {
					t.Fatalf("expiry %q is not an integer", value)
				}
			default:
				t.Fatalf("unexpected attribute %q in %q", key, got)
			}
			if key != "password" && strings.Contains(value, fuzzToken) && !inputHas(fuzzToken) {
				t.Fatalf("%s carries the token: %q", key, got)
			}
		}
		if !seen["username"] || !seen["password"] {
			t.Fatalf("answer lacks username or password: %q", got)
		}
		if strings.Contains(got, fuzzRefresh) && !inputHas(fuzzRefresh) && !strings.Contains(tokenSuffix, fuzzRefresh) {
			t.Fatalf("answer carries the refresh token: %q", got)
		}
	})
}

// FuzzReadRequest checks that a parsed request never holds a line break or
// NUL that came from a key=value line, and that an error is one line.
func FuzzReadRequest(f *testing.F) {
	for _, in := range []string{
		"protocol=https\nhost=git.example.com\npath=a/b\nusername=u\n\n",
		"url=https://u@h:1/p?q#f\n",
		"url=https://h/%0A\n",
		"url=https://%0A@h/\n",
		"host=a\rb\n",
		"path=x\x00\n",
		"protocol=https\r\n\r\nhost=after-blank\n",
	} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ReadRequest(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Fatalf("error is not one line: %q", err.Error())
			}
			return
		}
		if bytes.Contains(in, []byte("url=")) {
			return // url= fields are percent-decoded: see FuzzServe for what reaches git
		}
		for _, v := range []string{req.Protocol, req.Host, req.Path, req.Username} {
			if strings.ContainsAny(v, "\n\x00") {
				t.Fatalf("request field %q holds a newline or NUL", v)
			}
		}
	})
}
