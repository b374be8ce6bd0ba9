package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// MaxLine is the longest request line Serve accepts, in bytes, excluding
// the newline.
const MaxLine = 65535

// maxRequest bounds a whole request; git sends a handful of short lines.
const maxRequest = 1 << 20

// DefaultUsername is reported when neither the matching rule nor the
// request names a username. Servers that take a token as the password
// mostly ignore the username.
const DefaultUsername = "credhelper"

// Errors Serve returns for requests it does not answer by design; callers
// log them quietly. Anything else means a matching profile could not be
// served.
var (
	// ErrNoMatch reports that no rule matches the request.
	ErrNoMatch = errors.New("git: no credhelper profile matches the request")
	// ErrBadRequest reports a request that breaks the protocol's syntax or
	// limits.
	ErrBadRequest = errors.New("git: malformed credential request")
)

// Resolver returns the current pair of a named profile. It must be safe for
// concurrent use; errors it returns must not contain a secret.
type Resolver interface {
	Credential(ctx context.Context, profile string) (provider.Pair, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, profile string) (provider.Pair, error)

// Credential calls f(ctx, profile).
func (f ResolverFunc) Credential(ctx context.Context, profile string) (provider.Pair, error) {
	return f(ctx, profile)
}

// Options configure a Helper: the minimum validity per profile (subtracted
// from the token's expiry for password_expiry_utc, so that git asks again
// while the token is still usable) and the clock.
type Options = face.CacheOptions

// Rule matches requests to a profile.
type Rule struct {
	// Profile whose auth token is the password.
	Profile string
	// Protocol to match; default "https".
	Protocol string
	// Host to match, with ":port" if the remote URL has one. Required.
	Host string
	// Path prefix to match; empty matches any path.
	Path string
	// Username to report, and to require of requests that name one.
	Username string
}

// Request is what git asks for: the attributes credhelper matches on.
type Request struct {
	Protocol string
	Host     string
	Path     string
	Username string
}

// Helper answers git's credential actions for a fixed set of rules. It is
// safe for concurrent use if its Resolver is.
type Helper struct {
	opts     Options
	resolver Resolver
	rules    []Rule
}

// CheckHost reports why raw cannot be git.host, and what to write
// instead, or nil: git sends the host alone (with :port if any).
func CheckHost(raw string) error {
	if h, ok := face.HostOf(raw); ok {
		return &face.EntryError{Why: "git sends the host alone, not a URL", Instead: h}
	}
	if host, _, ok := strings.Cut(raw, "/"); ok && host != "" {
		return &face.EntryError{Why: "git sends the host alone: put the path in git.path", Instead: host}
	}
	return CheckSetting(raw)
}

// CheckSetting reports why v cannot be a git setting, or nil.
func CheckSetting(v string) error {
	if strings.ContainsAny(v, "\x00\n\r") {
		return &face.EntryError{Why: "contains a control character"}
	}
	return nil
}

// New returns a Helper matching requests against rules. A rule without a
// profile or host, or with a newline in a field, is refused.
func New(r Resolver, rules []Rule, optFns ...func(*Options)) (*Helper, error) {
	if r == nil {
		return nil, errors.New("git: Resolver is nil")
	}
	h := &Helper{resolver: r, opts: Options{}.Apply(optFns...)}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, fmt.Errorf("git: a rule for host %q names no profile", rule.Host)
		}
		if rule.Host == "" {
			return nil, fmt.Errorf("git: profile %q: git.host is required: set the host (with :port if any) this profile answers for", rule.Profile)
		}
		for _, v := range []string{rule.Protocol, rule.Host, rule.Path, rule.Username} {
			if CheckSetting(v) != nil {
				return nil, fmt.Errorf("git: profile %q: a git setting contains a control character", rule.Profile)
			}
		}
		if rule.Protocol == "" {
			rule.Protocol = "https"
		}
		rule.Protocol = strings.ToLower(rule.Protocol)
		rule.Host = strings.ToLower(rule.Host)
		rule.Path = cleanPath(rule.Path)
		h.rules = append(h.rules, rule)
	}
	return h, nil
}

// Serve performs one action. For get it writes the complete answer to out
// or, on any error, nothing; store, erase and unknown actions read and
// discard the request and return nil.
func (h *Helper) Serve(ctx context.Context, action string, in io.Reader, out io.Writer) error {
	if action != "get" {
		_, _ = io.Copy(io.Discard, io.LimitReader(in, maxRequest))
		return nil
	}
	req, err := ReadRequest(in)
	if err != nil {
		return err
	}
	rule, err := h.match(req)
	if err != nil {
		return err
	}
	p, err := h.resolver.Credential(ctx, rule.Profile)
	if err != nil {
		return fmt.Errorf("git: profile %q: %w", rule.Profile, err)
	}
	user := rule.Username
	if user == "" {
		user = req.Username
	}
	if user == "" {
		user = DefaultUsername
	}
	var b bytes.Buffer
	if err := writeAttr(&b, "username", user); err != nil {
		return err
	}
	if p.AuthToken == "" {
		return fmt.Errorf("git: profile %q has an empty auth token: store a pair with 'credhelper put --profile %s'", rule.Profile, rule.Profile)
	}
	if err := writeAttr(&b, "password", p.AuthToken); err != nil {
		return fmt.Errorf("git: profile %q: the auth token cannot be passed to git: %w", rule.Profile, err)
	}
	if !p.Never() {
		_ = writeAttr(&b, "password_expiry_utc", strconv.FormatInt(h.opts.Expiry(p, rule.Profile).Unix(), 10))
	}
	_, err = out.Write(b.Bytes())
	return err
}

func writeAttr(b *bytes.Buffer, key, value string) error {
	if strings.ContainsAny(value, "\x00\n") {
		return errors.New("git: a value contains a newline or NUL")
	}
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteByte('\n')
	return nil
}

// ReadRequest reads key=value lines up to a blank line or end of file, as
// git's credential_read does.
func ReadRequest(in io.Reader) (Request, error) {
	var req Request
	sc := bufio.NewScanner(io.LimitReader(in, maxRequest))
	sc.Buffer(make([]byte, 0, 4096), MaxLine+2) // the line, maybe a \r, and room to notice overflow
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			break
		}
		if len(line) > MaxLine {
			return Request{}, fmt.Errorf("%w: a line is over %d bytes", ErrBadRequest, MaxLine)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return Request{}, fmt.Errorf("%w: a line has no '=': git sends key=value lines", ErrBadRequest)
		}
		if strings.ContainsRune(value, 0) {
			return Request{}, fmt.Errorf("%w: the value of %q contains NUL", ErrBadRequest, key)
		}
		switch key {
		case "protocol":
			req.Protocol = value
		case "host":
			req.Host = value
		case "path":
			req.Path = value
		case "username":
			req.Username = value
		case "url":
			u, err := fromURL(value)
			if err != nil {
				return Request{}, err
			}
			req = u
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Request{}, fmt.Errorf("%w: a line is over %d bytes", ErrBadRequest, MaxLine)
		}
		return Request{}, fmt.Errorf("git: read request: %w", err)
	}
	return req, nil
}

// fromURL splits url= the way git's credential_from_url does: everything
// is cleared first, then protocol, user, host and path (without its leading
// slash) are taken from the URL.
func fromURL(raw string) (Request, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return Request{}, fmt.Errorf("%w: url= is not a URL of the form protocol://host/path", ErrBadRequest)
	}
	r := Request{Protocol: u.Scheme, Host: u.Host, Path: strings.TrimPrefix(u.Path, "/")}
	if u.User != nil {
		r.Username = u.User.Username()
	}
	// Percent-decoding can produce what a line cannot hold; git itself
	// refuses such URLs (CVE-2020-5260).
	if strings.ContainsAny(r.Host+r.Path+r.Username, "\n\x00") {
		return Request{}, fmt.Errorf("%w: url= decodes to a newline or NUL", ErrBadRequest)
	}
	return r, nil
}

// cleanPath drops surrounding slashes and a trailing ".git".
func cleanPath(p string) string {
	p = strings.Trim(p, "/")
	p = strings.TrimSuffix(p, ".git")
	return strings.TrimRight(p, "/")
}

// match returns the most specific rule for req.
func (h *Helper) match(req Request) (Rule, error) {
	if req.Protocol == "" || req.Host == "" {
		return Rule{}, fmt.Errorf("%w: the request names no protocol or host", ErrNoMatch)
	}
	proto, host, path := strings.ToLower(req.Protocol), strings.ToLower(req.Host), cleanPath(req.Path)
	best, bestScore, tie := Rule{}, -1, false
	for _, r := range h.rules {
		if r.Protocol != proto || r.Host != host {
			continue
		}
		if r.Path != "" && path != r.Path && !strings.HasPrefix(path, r.Path+"/") {
			continue
		}
		if r.Username != "" && req.Username != "" && r.Username != req.Username {
			continue
		}
		score := 4 * len(r.Path)
		if r.Path != "" {
			score += 4
		}
		switch {
		case r.Username != "" && r.Username == req.Username:
			score += 2 // names the user git asks for
		case r.Username == "":
			score++ // for anyone, preferred to another user's rule
		}
		switch {
		case score > bestScore:
			best, bestScore, tie = r, score, false
		case score == bestScore && r.Profile != best.Profile:
			tie = true
		}
	}
	if bestScore < 0 {
		return Rule{}, fmt.Errorf("%w: %q", ErrNoMatch, proto+"://"+host)
	}
	if tie {
		return Rule{}, fmt.Errorf("git: several credhelper profiles match %q equally: give one of them a longer git.path or a git.username", proto+"://"+host+"/"+path)
	}
	return best, nil
}
