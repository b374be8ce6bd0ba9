package goauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

const secret = "tok-GOAUTH-5f1e"

// resolver serves secret-PROFILE, counts refreshes, and fails for
// profiles named "broken*".
type resolver struct {
	refreshes map[string]int
}

func (r *resolver) Credential(_ context.Context, profile string) (provider.Pair, error) {
	if strings.HasPrefix(profile, "broken") {
		return provider.Pair{}, provider.Transient(errors.New("backend down"))
	}
	return provider.Pair{AuthToken: secret + "-" + profile}, nil
}

func (r *resolver) Refresh(ctx context.Context, profile string) (provider.Pair, error) {
	r.refreshes[profile]++
	p, err := r.Credential(ctx, profile)
	p.AuthToken += "-refreshed"
	return p, err
}

func newHelper(t *testing.T, rules ...Rule) (*Helper, *resolver) {
	t.Helper()
	r := &resolver{refreshes: map[string]int{}}
	if len(rules) == 0 {
		rules = []Rule{
			{Profile: "proxy", URLPrefixes: []string{"https://goproxy.example.com", "GIT.example.com/org/"}},
			{Profile: "team", URLPrefixes: []string{"https://git.example.com/org/team"}, Username: "ci"},
		}
	}
	h, err := New(r, rules)
	if err != nil {
		t.Fatal(err)
	}
	return h, r
}

func TestFirstRunPrintsEveryProfile(t *testing.T) {
	h, _ := newHelper(t)
	var out bytes.Buffer
	if err := h.Serve(context.Background(), nil, nil, &out); err != nil {
		t.Fatal(err)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("ci:" + secret + "-team"))
	want := "https://goproxy.example.com\nhttps://git.example.com/org\n\nAuthorization: Bearer " + secret + "-proxy\n\n" +
		"https://git.example.com/org/team\n\nAuthorization: Basic " + basic + "\n\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRetryMatchesAsTheGoCommand(t *testing.T) {
	const unauthorized = "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"
	const notFound = "HTTP/2.0 404 Not Found\nContent-Type: text/plain\n\n"
	for _, tc := range []struct {
		url, in, profile string
		refreshed        bool
	}{
		{"https://goproxy.example.com/mod/@v/list", unauthorized, "proxy", true},
		{"https://goproxy.example.com/mod/@v/list", notFound, "proxy", false},
		{"https://goproxy.example.com/mod/@v/list", "", "proxy", false},
		{"https://git.example.com/org/repo?go-get=1", unauthorized, "proxy", true},
		{"https://git.example.com/org/team/x", unauthorized, "team", true},
		{"https://git.example.com/org/team", notFound, "team", false},
		{"https://git.example.com/org/teamster", notFound, "proxy", false},
		// The go command looks "org/team?go-get=1" up whole, then "org":
		// the team prefix never covers a URL with a query on its last segment.
		{"https://git.example.com/org/team?go-get=1", notFound, "proxy", false},
		{"https://GIT.EXAMPLE.COM/org/team/x", notFound, "team", false},
		{"https://git.example.com/other", unauthorized, "", false},
		{"https://example.com/", unauthorized, "", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			h, r := newHelper(t)
			var out bytes.Buffer
			if err := h.Serve(context.Background(), []string{tc.url}, strings.NewReader(tc.in), &out); err != nil {
				t.Fatal(err)
			}
			if tc.profile == "" {
				if out.Len() != 0 || len(r.refreshes) != 0 {
					t.Fatalf("unmatched URL answered %q, refreshes %v", out.String(), r.refreshes)
				}
				return
			}
			if (r.refreshes[tc.profile] == 1) != tc.refreshed || len(r.refreshes) > 1 {
				t.Errorf("refreshes %v, want a refresh of %s: %v", r.refreshes, tc.profile, tc.refreshed)
			}
			got := out.String()
			if !strings.HasSuffix(got, "\n\n") || strings.Count(got, "Authorization: ") != 1 {
				t.Fatalf("answer %q is not one block", got)
			}
			tok := secret + "-" + tc.profile
			if tc.refreshed {
				tok += "-refreshed"
			}
			if tc.profile == "team" {
				if !strings.Contains(got, base64.StdEncoding.EncodeToString([]byte("ci:"+tok))) {
					t.Errorf("answer %q lacks team's Basic credentials", got)
				}
			} else if !strings.Contains(got, "Authorization: Bearer "+tok+"\n") {
				t.Errorf("answer %q lacks %s", got, tok)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	h, _ := newHelper(t)
	for _, tc := range []struct {
		name string
		args []string
		in   string
		bad  bool
	}{
		{"two arguments", []string{"https://a/", "b"}, "", true},
		{"not https", []string{"http://goproxy.example.com/x"}, "", true},
		{"not a URL", []string{"::"}, "", true},
		{"garbage input", []string{"https://goproxy.example.com/x"}, "garbage\n\n", true},
		{"oversized input", []string{"https://goproxy.example.com/x"}, "HTTP/1.1 401 Unauthorized\r\nX: " + strings.Repeat("a", MaxInput) + "\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := h.Serve(context.Background(), tc.args, strings.NewReader(tc.in), &out)
			if err == nil || out.Len() != 0 {
				t.Fatalf("err %v, out %q", err, out.String())
			}
			if tc.bad && !errors.Is(err, ErrBadRequest) {
				t.Errorf("err %v is not ErrBadRequest", err)
			}
		})
	}
}

func TestFailingProfiles(t *testing.T) {
	h, _ := newHelper(t,
		Rule{Profile: "ok", URLPrefixes: []string{"a.example.com"}},
		Rule{Profile: "broken", URLPrefixes: []string{"b.example.com"}})
	var out bytes.Buffer
	err := h.Serve(context.Background(), nil, nil, &out)
	var partial *PartialError
	if !errors.As(err, &partial) || !strings.Contains(out.String(), "https://a.example.com\n") || strings.Contains(out.String(), "b.example.com") {
		t.Fatalf("err %v, out %q: want the working profile and a PartialError", err, out.String())
	}
	h, _ = newHelper(t, Rule{Profile: "broken", URLPrefixes: []string{"b.example.com"}})
	out.Reset()
	err = h.Serve(context.Background(), nil, nil, &out)
	if err == nil || errors.As(err, &partial) || out.Len() != 0 {
		t.Fatalf("all failing: err %v, out %q", err, out.String())
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []Rule
	}{
		{"http", []Rule{{Profile: "a", URLPrefixes: []string{"http://a.example.com"}}}},
		{"query", []Rule{{Profile: "a", URLPrefixes: []string{"https://a.example.com/x?y=1"}}}},
		{"user", []Rule{{Profile: "a", URLPrefixes: []string{"https://u@a.example.com/"}}}},
		{"no host", []Rule{{Profile: "a", URLPrefixes: []string{"https:///x"}}}},
		{"space", []Rule{{Profile: "a", URLPrefixes: []string{"https://a.example.com/x y"}}}},
		{"colon in username", []Rule{{Profile: "a", URLPrefixes: []string{"a.example.com"}, Username: "a:b"}}},
		{"no profile", []Rule{{URLPrefixes: []string{"a.example.com"}}}},
		{"duplicate", []Rule{{Profile: "a", URLPrefixes: []string{"a.example.com/x"}}, {Profile: "b", URLPrefixes: []string{"https://A.example.com/x/"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(&resolver{}, tc.rules); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestTokenThatCannotBeAHeader(t *testing.T) {
	r := face.ResolverFunc(func(context.Context, string) (provider.Pair, error) {
		return provider.Pair{AuthToken: secret + "\r\nX-Evil: 1"}, nil
	})
	h, err := New(r, []Rule{{Profile: "a", URLPrefixes: []string{"a.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = h.Serve(context.Background(), nil, nil, &out)
	if err == nil || out.Len() != 0 || strings.Contains(err.Error(), secret) {
		t.Fatalf("err %v, out %q", err, out.String())
	}
}
