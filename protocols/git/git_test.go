package git

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

const secret = "gitsecret-Q7-distinctive"

var expiry = time.Unix(1900000000, 0)

func testHelper(t *testing.T, fail error) *Helper {
	t.Helper()
	r := ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		if fail != nil {
			return provider.Pair{}, fail
		}
		p := provider.Pair{AuthToken: secret + "-" + profile, RefreshToken: "r"}
		if profile != "never" {
			p.ValidUntil = expiry
		}
		return p, nil
	})
	h, err := New(r, []Rule{
		{Profile: "host", Host: "git.example.com"},
		{Profile: "org", Host: "git.example.com", Path: "org/"},
		{Profile: "team", Host: "git.example.com", Path: "/org/team"},
		{Profile: "bob", Host: "git.example.com", Path: "org", Username: "bob"},
		{Profile: "never", Host: "localhost:8080", Protocol: "HTTP", Username: "ci"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(t *testing.T, h *Helper, action, in string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := h.Serve(context.Background(), action, strings.NewReader(in), &out)
	if err != nil && out.Len() != 0 {
		t.Errorf("wrote %q and failed with %v", out.String(), err)
	}
	return out.String(), err
}

func TestGet(t *testing.T) {
	h := testHelper(t, nil)
	exp := "password_expiry_utc=1899999940\n" // a minute (the default min_validity) before the expiry
	for _, tc := range []struct{ name, in, want string }{
		{"host", "protocol=https\nhost=git.example.com\n\n", "username=credhelper\npassword=" + secret + "-host\n" + exp},
		{"host case, EOF ends", "protocol=HTTPS\nhost=Git.Example.com", "username=credhelper\npassword=" + secret + "-host\n" + exp},
		{"request username", "protocol=https\nhost=git.example.com\nusername=carol\n\n", "username=carol\npassword=" + secret + "-host\n" + exp},
		{"path prefix", "protocol=https\nhost=git.example.com\npath=org/app.git\n\n", "username=credhelper\npassword=" + secret + "-org\n" + exp},
		{"longer path wins", "protocol=https\nhost=git.example.com\npath=org/team/app.git\n\n", "username=credhelper\npassword=" + secret + "-team\n" + exp},
		{"path exact with .git", "protocol=https\nhost=git.example.com\npath=org/team.git\n\n", "username=credhelper\npassword=" + secret + "-team\n" + exp},
		{"segment boundary", "protocol=https\nhost=git.example.com\npath=organisation/app\n\n", "username=credhelper\npassword=" + secret + "-host\n" + exp},
		{"username wins tie", "protocol=https\nhost=git.example.com\npath=org/app\nusername=bob\n\n", "username=bob\npassword=" + secret + "-bob\n" + exp},
		{"url attribute", "url=https://git.example.com/org/app.git\n\n", "username=credhelper\npassword=" + secret + "-org\n" + exp},
		{"url resets", "protocol=http\nhost=other\nurl=https://bob@git.example.com/org/x\n\n", "username=bob\npassword=" + secret + "-bob\n" + exp},
		{"other user falls back", "protocol=https\nhost=git.example.com\npath=org/app\nusername=carol\n\n", "username=carol\npassword=" + secret + "-org\n" + exp},
		{"unknown attributes ignored", "capability[]=authtype\nprotocol=https\nwwwauth[]=Basic realm=x\nhost=git.example.com\nquit=0\n\n", "username=credhelper\npassword=" + secret + "-host\n" + exp},
		{"CRLF", "protocol=https\r\nhost=git.example.com\r\n\r\n", "username=credhelper\npassword=" + secret + "-host\n" + exp},
		{"never expires, port, http", "protocol=http\nhost=localhost:8080\n\n", "username=ci\npassword=" + secret + "-never\n"},
		{"stops at blank line", "protocol=https\nhost=git.example.com\n\nhost=elsewhere\n", "username=credhelper\npassword=" + secret + "-host\n" + exp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := serve(t, h, "get", tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestGetNothing(t *testing.T) {
	h := testHelper(t, nil)
	for _, tc := range []struct {
		name, in string
		noMatch  bool
	}{
		{"unknown host", "protocol=https\nhost=github.com\n\n", true},
		{"http not https", "protocol=http\nhost=git.example.com\n\n", true},
		{"other port", "protocol=http\nhost=localhost:8081\n\n", true},
		{"username mismatch", "protocol=http\nhost=localhost:8080\nusername=eve\n\n", true},
		{"no host", "protocol=https\n\n", true},
		{"empty", "", true},
		{"line without =", "protocol=https\nhost\n\n", false},
		{"NUL", "protocol=https\nhost=git.example.com\x00evil\n\n", false},
		{"long line", "protocol=https\nhost=" + strings.Repeat("a", MaxLine) + "\n\n", false},
		{"very long line", "protocol=https\npath=" + strings.Repeat("a", 3*MaxLine) + "\n\n", false},
		{"bad url", "url=::not a url\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := serve(t, h, "get", tc.in)
			if err == nil || got != "" {
				t.Fatalf("got %q, %v; want nothing and an error", got, err)
			}
			if errors.Is(err, ErrNoMatch) != tc.noMatch || errors.Is(err, ErrBadRequest) == tc.noMatch {
				t.Errorf("got %v; want ErrNoMatch: %v, else ErrBadRequest", err, tc.noMatch)
			}
		})
	}
	line := "path=" + strings.Repeat("a", MaxLine-len("path=")) + "\nprotocol=https\nhost=git.example.com\n"
	if _, err := serve(t, h, "get", line); err != nil {
		t.Errorf("a line of exactly %d bytes: %v", MaxLine, err)
	}
}

func TestAmbiguous(t *testing.T) {
	r := ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{AuthToken: secret}, nil })
	h, err := New(r, []Rule{{Profile: "a", Host: "h"}, {Profile: "b", Host: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := serve(t, h, "get", "protocol=https\nhost=h\n")
	if err == nil || errors.Is(err, ErrNoMatch) || got != "" {
		t.Errorf("got %q, %v; want nothing and an ambiguity error", got, err)
	}
}

func TestResolverFailure(t *testing.T) {
	h := testHelper(t, provider.Transient(errors.New("backend unreachable")))
	got, err := serve(t, h, "get", "protocol=https\nhost=git.example.com\n")
	if err == nil || got != "" || errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), `"host"`) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestTokenWithNewlineRefused(t *testing.T) {
	r := ResolverFunc(func(context.Context, string) (provider.Pair, error) {
		return provider.Pair{AuthToken: secret + "\nusername=evil"}, nil
	})
	h, _ := New(r, []Rule{{Profile: "a", Host: "h"}})
	got, err := serve(t, h, "get", "protocol=https\nhost=h\n")
	if err == nil || got != "" || strings.Contains(err.Error(), secret) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestStoreEraseUnknown(t *testing.T) {
	h := testHelper(t, nil)
	for _, action := range []string{"store", "erase", "frobnicate", ""} {
		got, err := serve(t, h, action, "protocol=https\nhost=git.example.com\npassword="+secret+"\n\n")
		if err != nil || got != "" {
			t.Errorf("%s: got %q, %v; want silence", action, got, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	r := ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, rules := range [][]Rule{
		{{Profile: "a"}},
		{{Host: "h"}},
		{{Profile: "a", Host: "h\nx"}},
	} {
		if _, err := New(r, rules); err == nil {
			t.Errorf("New(%+v) accepted", rules)
		}
	}
}
