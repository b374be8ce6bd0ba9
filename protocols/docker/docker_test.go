package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/provider"
)

const secret = "tok-ZX81-distinctive"

func testHelper(t *testing.T, fail error) *Helper {
	t.Helper()
	r := ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		if fail != nil {
			return provider.Pair{}, fail
		}
		return provider.Pair{AuthToken: secret + "-" + profile}, nil
	})
	h, err := New(r, []Registry{
		{ServerURL: "registry.example.com", Profile: "reg"},
		{ServerURL: "https://index.docker.io/v1/", Profile: "hub", Username: "alice"},
		{ServerURL: "localhost:5000", Profile: "local"},
		{ServerURL: "https://ghcr.io/org", Profile: "org"},
		{ServerURL: "ghcr.io", Profile: "ghcr"},
	}, func(o *Options) { o.Version = "1.2.3" })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGet(t *testing.T) {
	h := testHelper(t, nil)
	for _, tc := range []struct{ in, profile, user string }{
		{"registry.example.com", "reg", "<token>"},
		{"https://registry.example.com", "reg", "<token>"},
		{"https://REGISTRY.example.com/\n", "reg", "<token>"},
		{"http://registry.example.com/v2/", "reg", "<token>"},
		{"  registry.example.com  \n", "reg", "<token>"},
		{"https://index.docker.io/v1/", "hub", "alice"},
		{"https://index.docker.io/v1", "hub", "alice"},
		{"index.docker.io/v1/", "hub", "alice"},
		{"localhost:5000", "local", "<token>"},
		{"ghcr.io", "ghcr", "<token>"},
		{"ghcr.io/org", "org", "<token>"},
		{"https://ghcr.io/org/app", "org", "<token>"},
		{"ghcr.io/organisation", "ghcr", "<token>"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var out bytes.Buffer
			if err := h.Serve(context.Background(), "get", strings.NewReader(tc.in), &out); err != nil {
				t.Fatalf("get: %v", err)
			}
			var c Credentials
			if err := json.Unmarshal(out.Bytes(), &c); err != nil {
				t.Fatalf("answer %q: %v", out.String(), err)
			}
			want := Credentials{ServerURL: strings.TrimSpace(tc.in), Username: tc.user, Secret: secret + "-" + tc.profile}
			if c != want {
				t.Errorf("got %+v, want %+v", c, want)
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	h := testHelper(t, nil)
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"unknown host", "other.example.com", ErrNotFound},
		{"other port", "localhost:5001", ErrNotFound},
		{"port missing", "localhost", ErrNotFound},
		{"hub without path", "https://index.docker.io", ErrNotFound},
		{"empty", "  \n", ErrMissingServerURL},
		{"garbage", "\x00\x01binary", nil},
		{"bad scheme", "ftp://registry.example.com", nil},
		{"no host", "https:///v2", nil},
		{"oversized", strings.Repeat("a", MaxInput+1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := h.Serve(context.Background(), "get", strings.NewReader(tc.in), &out)
			if err == nil {
				t.Fatalf("get %q succeeded: %s", tc.in, out.String())
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q before failing", out.String())
			}
			if tc.want != nil && err != tc.want {
				t.Errorf("got %v, want exactly %v", err, tc.want)
			}
			if tc.want == ErrNotFound && err.Error() != "credentials not found in native keychain" {
				t.Errorf("not-found text %q", err.Error())
			}
		})
	}
}

func TestResolverErrorNamesProfileNotSecret(t *testing.T) {
	h := testHelper(t, provider.Transient(errors.New("backend unreachable")))
	err := h.Serve(context.Background(), "get", strings.NewReader("ghcr.io"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"ghcr"`) || !provider.IsTransient(err) {
		t.Fatalf("got %v, want a transient error naming profile ghcr", err)
	}
}

func TestStore(t *testing.T) {
	h := testHelper(t, nil)
	store := func(c Credentials) error {
		b, _ := json.Marshal(c)
		return h.Serve(context.Background(), "store", bytes.NewReader(b), &bytes.Buffer{})
	}
	if err := store(Credentials{ServerURL: "https://ghcr.io", Username: "<token>", Secret: secret + "-ghcr"}); err != nil {
		t.Errorf("storing back the current credential: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    Credentials
		want string
	}{
		{"other secret", Credentials{ServerURL: "ghcr.io", Username: "<token>", Secret: "new-" + secret}, "credhelper put --profile ghcr"},
		{"other user", Credentials{ServerURL: "ghcr.io", Username: "bob", Secret: secret + "-ghcr"}, "credhelper put --profile ghcr"},
		{"unmapped", Credentials{ServerURL: "quay.io", Username: "bob", Secret: "pw-" + secret}, "credHelpers"},
		{"no url", Credentials{Username: "bob", Secret: "x"}, MissingServerURLMessage},
		{"no user", Credentials{ServerURL: "ghcr.io", Secret: "x"}, MissingUsernameMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
	if err := h.Serve(context.Background(), "store", strings.NewReader("{not json"), &bytes.Buffer{}); err == nil {
		t.Error("garbage store accepted")
	}
}

func TestEraseListVersion(t *testing.T) {
	h := testHelper(t, nil)
	ctx := context.Background()
	if err := h.Serve(ctx, "erase", strings.NewReader("ghcr.io"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "docker.server_urls") {
		t.Errorf("erase of a mapped registry: %v", err)
	}
	if err := h.Serve(ctx, "erase", strings.NewReader("quay.io"), &bytes.Buffer{}); err != ErrNotFound {
		t.Errorf("erase of an unmapped registry: %v, want ErrNotFound", err)
	}
	var out bytes.Buffer
	if err := h.Serve(ctx, "list", strings.NewReader("unused"), &out); err != nil {
		t.Fatal(err)
	}
	var l map[string]string
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	if len(l) != 5 || l["https://index.docker.io/v1/"] != "alice" || l["ghcr.io"] != "<token>" {
		t.Errorf("list = %v", l)
	}
	out.Reset()
	if err := h.Serve(ctx, "version", nil, &out); err != nil || out.String() != "docker-credential-credhelper (github.com/credhelper/credhelper) 1.2.3\n" {
		t.Errorf("version = %q, %v", out.String(), err)
	}
	if err := h.Serve(ctx, "frobnicate", nil, &out); err == nil || !strings.Contains(err.Error(), "unknown action: frobnicate") {
		t.Errorf("unknown action: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	r := ResolverFunc(func(context.Context, string) (provider.Pair, error) { return provider.Pair{}, nil })
	for _, tc := range []struct {
		name string
		regs []Registry
	}{
		{"duplicate", []Registry{{ServerURL: "ghcr.io", Profile: "a"}, {ServerURL: "https://GHCR.io/", Profile: "b"}}},
		{"bad url", []Registry{{ServerURL: "ftp://x", Profile: "a"}}},
		{"no profile", []Registry{{ServerURL: "x.io"}}},
		{"username newline", []Registry{{ServerURL: "x.io", Profile: "a", Username: "a\nb"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(r, tc.regs); err == nil {
				t.Error("accepted")
			}
		})
	}
}
