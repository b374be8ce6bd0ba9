package goauth

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const (
	fuzzToken   = "FUZZ-GOAUTH-AUTH-91c2"
	fuzzRefresh = "FUZZ-GOAUTH-REFRESH-77d0"
)

// FuzzServe drives a re-run with an arbitrary URL argument and input and
// an arbitrary token suffix. It checks: no panic, nothing written on error,
// one-line errors without a secret, and that every answer parses the way
// the go command's parseUserAuth does, with the token only in the header.
func FuzzServe(f *testing.F) {
	for _, tc := range []struct{ url, in string }{
		{"https://goproxy.example.com/m/@v/list", "HTTP/1.1 401 Unauthorized\r\n\r\n"},
		{"https://goproxy.example.com/m/@v/list", "HTTP/1.1 404 Not Found\nA: b\n\n"},
		{"https://git.example.com/org/x?go-get=1", ""},
		{"https://git.example.com/org/team/", "HTTP/1.0 403 Forbidden\r\n\r\n"},
		{"http://goproxy.example.com/", ""},
		{"https://other.example.com/", "garbage"},
		{"", ""},
	} {
		f.Add(tc.url, []byte(tc.in), "", false)
		f.Add(tc.url, []byte(tc.in), "\r\nX: y", true)
	}
	f.Fuzz(func(t *testing.T, rawURL string, in []byte, suffix string, fail bool) {
		r := face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
			if fail {
				return provider.Pair{}, errors.New("backend down")
			}
			return provider.Pair{AuthToken: fuzzToken + profile + suffix, RefreshToken: fuzzRefresh}, nil
		})
		h, err := New(r, []Rule{
			{Profile: "proxy", URLPrefixes: []string{"goproxy.example.com", "git.example.com/org"}},
			{Profile: "team", URLPrefixes: []string{"git.example.com/org/team"}, Username: "ci"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = h.Serve(context.Background(), []string{rawURL}, bytes.NewReader(in), &out)
		inputHas := func(s string) bool { return bytes.Contains(in, []byte(s)) || strings.Contains(rawURL, s) }
		if err != nil {
			if out.Len() != 0 {
				t.Fatalf("failed with %v after writing %q", err, out.String())
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n\x00") && !inputHas("\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			for _, s := range []string{fuzzToken, fuzzRefresh} {
				if strings.Contains(msg, s) && !inputHas(s) {
					t.Fatalf("error carries a secret: %q", msg)
				}
			}
			return
		}
		if out.Len() == 0 {
			return
		}
		creds, perr := parseLikeGo(out.String())
		if perr != nil {
			t.Fatalf("the go command would refuse %q: %v", out.String(), perr)
		}
		for prefix, hdr := range creds {
			if strings.Contains(prefix, fuzzToken) {
				t.Fatalf("prefix %q carries the token", prefix)
			}
			if len(hdr) != 1 || len(hdr["Authorization"]) != 1 {
				t.Fatalf("headers %v for %q", hdr, prefix)
			}
		}
		if strings.Contains(out.String(), fuzzRefresh) {
			t.Fatal("the refresh token was printed")
		}
	})
}

// parseLikeGo parses output as cmd/go/internal/auth's parseUserAuth does:
// URL lines, a blank line, "Name: value" header lines, a blank line.
func parseLikeGo(data string) (map[string]http.Header, error) {
	creds := map[string]http.Header{}
	for data != "" {
		var line string
		var ok bool
		var urls []string
		for {
			if line, data, ok = strings.Cut(data, "\n"); !ok {
				return nil, errors.New("missing empty line after URLs")
			}
			if line == "" {
				break
			}
			u, err := url.ParseRequestURI(line)
			if err != nil {
				return nil, err
			}
			urls = append(urls, u.String())
		}
		hdr := http.Header{}
		for {
			if line, data, ok = strings.Cut(data, "\n"); !ok {
				return nil, errors.New("missing empty line after headers")
			}
			if line == "" {
				break
			}
			name, value, ok := strings.Cut(line, ": ")
			value = strings.TrimSpace(value)
			if !ok || name == "" || !validHeaderValue(value) || strings.ContainsAny(name, " \t:") {
				return nil, errors.New("invalid header line")
			}
			hdr.Add(name, value)
		}
		for _, u := range urls {
			creds[strings.TrimPrefix(u, "https://")] = hdr
		}
	}
	return creds, nil
}
