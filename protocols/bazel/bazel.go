package bazel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
)

// ExpiresLayout is the form of expires: RFC 3339 in whole seconds, the
// layout Bazel's parser accepts.
const ExpiresLayout = "2006-01-02T15:04:05Z07:00"

// MaxInput bounds the request: one URI.
const MaxInput = 64 << 10

// ErrBadRequest reports a command or input Bazel would not send.
var ErrBadRequest = errors.New("bazel: malformed request")

// Rule maps hosts to a profile.
type Rule struct {
	Profile string
	// Hosts: host, host:port, or *.domain.
	Hosts []string
}

// Options configure a Helper: the minimum validity per profile and the
// clock, which decide how long the tool may cache a token.
type Options = face.CacheOptions

// Helper answers Bazel's get for a fixed set of rules. It is safe for
// concurrent use if its Resolver is.
type Helper struct {
	resolver face.Resolver
	hosts    []host
	opts     Options
}

type host struct {
	profile string
	name    string // lower case; without "*." for a wildcard
	port    string // empty: any port
	wild    bool
}

// New returns a Helper for rules; it refuses a host that is not a host
// name (with an optional port or a leading "*.") and a host two profiles
// claim.
func New(r face.Resolver, rules []Rule, optFns ...func(*Options)) (*Helper, error) {
	opts := Options{}.Apply(optFns...)
	if r == nil {
		return nil, errors.New("bazel: Resolver is nil")
	}
	h := &Helper{resolver: r, opts: opts}
	seen := map[host]string{}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, errors.New("bazel: a rule names no profile")
		}
		for _, raw := range rule.Hosts {
			hs, err := parseHost(raw)
			if err != nil {
				return nil, fmt.Errorf("bazel: profile %q: hosts entry %q: %w", rule.Profile, raw, err)
			}
			if other, dup := seen[hs]; dup && other != rule.Profile {
				return nil, fmt.Errorf("bazel: profiles %q and %q both name host %q: keep it in one profile's bazel.hosts", other, rule.Profile, raw)
			}
			seen[hs] = rule.Profile
			hs.profile = rule.Profile
			h.hosts = append(h.hosts, hs)
		}
	}
	return h, nil
}

// CheckHost reports why raw cannot be a bazel.hosts entry, and what to
// write instead, or nil.
func CheckHost(raw string) error {
	_, err := parseHost(raw)
	return err
}

func parseHost(raw string) (host, error) {
	if h, ok := face.HostOf(raw); ok {
		return host{}, &face.EntryError{Why: "a hosts entry is a host, not a URL", Instead: h}
	}
	bad := &face.EntryError{Why: "not a host name, host:port or *.domain", Instead: "cache.example.com"}
	s := strings.ToLower(strings.TrimSpace(raw))
	var hs host
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		hs.wild, s = true, rest
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return host{}, bad
		}
		s, hs.port = h, p
	}
	if s == "" || strings.ContainsAny(s, "*/?#@: \t\x00\r\n") {
		return host{}, bad
	}
	hs.name = s
	return hs, nil
}

// Request is the input of get.
type Request struct {
	URI string `json:"uri"`
}

// Response is the output of get.
type Response struct {
	Headers map[string][]string `json:"headers,omitempty"`
	Expires string              `json:"expires,omitempty"`
}

// Serve runs one command: get reads the request from in and writes the
// response to out; on error nothing has been written.
func (h *Helper) Serve(ctx context.Context, command string, in io.Reader, out io.Writer) error {
	if command != "get" {
		return fmt.Errorf("%w: unknown command %q: credhelper implements get", ErrBadRequest, command)
	}
	data, err := face.ReadAll(in, MaxInput, "standard input")
	if err != nil {
		return fmt.Errorf("bazel: %w", err)
	}
	var req Request
	if err := json.Unmarshal(bytes.TrimSpace(data), &req); err != nil {
		return fmt.Errorf("%w: standard input is not a JSON object {\"uri\": ...}", ErrBadRequest)
	}
	u, err := url.Parse(req.URI)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return fmt.Errorf("%w: \"uri\" is not an absolute URI such as https://host/path", ErrBadRequest)
	}
	var res Response
	if hs, ok := h.match(u); ok {
		p, err := h.resolver.Credential(ctx, hs.profile)
		if err != nil {
			return fmt.Errorf("bazel: profile %q: %w", hs.profile, err)
		}
		tok, err := face.Token(p, hs.profile)
		if err != nil {
			return fmt.Errorf("bazel: %w", err)
		}
		res.Headers = map[string][]string{"Authorization": {"Bearer " + tok}}
		if d := h.opts.CacheFor(p, hs.profile); d >= 0 {
			// Expiry, or now once that has passed.
			res.Expires = h.opts.Now().Add(d).UTC().Truncate(time.Second).Format(ExpiresLayout)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("bazel: encode response: %w", err)
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// match returns the most specific host rule for u.
func (h *Helper) match(u *url.URL) (host, bool) {
	name, port := strings.ToLower(u.Hostname()), u.Port()
	var best host
	found := false
	better := func(a, b host) bool { // a more specific than b
		if a.wild != b.wild {
			return !a.wild
		}
		if len(a.name) != len(b.name) {
			return len(a.name) > len(b.name)
		}
		return a.port != "" && b.port == ""
	}
	for _, hs := range h.hosts {
		if hs.port != "" && hs.port != port {
			continue
		}
		if hs.wild && !strings.HasSuffix(name, "."+hs.name) || !hs.wild && name != hs.name {
			continue
		}
		if !found || better(hs, best) {
			best, found = hs, true
		}
	}
	return best, found
}
