package goauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// MaxInput bounds the response the go command writes on a re-run: a status
// line and the response's headers.
const MaxInput = 1 << 20

// statusUnauthorized is HTTP's 401, the status on which a re-run refreshes.
const statusUnauthorized = 401

// ErrBadRequest reports arguments or input the go command would not send.
var ErrBadRequest = errors.New("goauth: malformed request")

// Rule maps URL prefixes to a profile.
type Rule struct {
	// Profile whose auth token is sent.
	Profile string
	// URLPrefixes as configured: https://host[:port][/path], or the same
	// without the scheme.
	URLPrefixes []string
	// Username, when set, makes the header Basic authentication with the
	// token as the password; otherwise it is a Bearer token.
	Username string
}

// PartialError reports profiles that could not be served while others
// were written; the go command uses what was written only if the helper
// exits 0.
type PartialError struct {
	Err error
}

func (e *PartialError) Error() string {
	return "goauth: some profiles were not served: " + e.Err.Error()
}

// Unwrap returns the failures.
func (e *PartialError) Unwrap() error { return e.Err }

// Helper answers GOAUTH runs for a fixed set of rules. It is safe for
// concurrent use if its Resolver is.
type Helper struct {
	resolver face.Resolver
	rules    []Rule         // prefixes normalised to host/path
	byPrefix map[string]int // normalised prefix -> index in rules
}

// New returns a Helper for rules. It refuses a prefix that is not an HTTPS
// URL without query or fragment, a username with a colon or control
// character, and a prefix two profiles claim.
func New(r face.Resolver, rules []Rule) (*Helper, error) {
	if r == nil {
		return nil, errors.New("goauth: Resolver is nil")
	}
	h := &Helper{resolver: r, byPrefix: map[string]int{}}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, errors.New("goauth: a rule names no profile")
		}
		if err := CheckUsername(rule.Username); err != nil {
			return nil, fmt.Errorf("goauth: profile %q: goauth.username: %w", rule.Profile, err)
		}
		norm := make([]string, 0, len(rule.URLPrefixes))
		for _, raw := range rule.URLPrefixes {
			p, err := normalisePrefix(raw)
			if err != nil {
				return nil, fmt.Errorf("goauth: profile %q: url_prefixes entry %q: %w", rule.Profile, raw, err)
			}
			if i, dup := h.byPrefix[p]; dup && h.rules[i].Profile != rule.Profile {
				return nil, fmt.Errorf("goauth: profiles %q and %q both name URL prefix %q: keep it in one profile's goauth.url_prefixes", h.rules[i].Profile, rule.Profile, raw)
			}
			h.byPrefix[p] = len(h.rules)
			norm = append(norm, p)
		}
		if len(norm) == 0 {
			continue
		}
		rule.URLPrefixes = norm
		h.rules = append(h.rules, rule)
	}
	return h, nil
}

// CheckURLPrefix reports why raw cannot be a goauth.url_prefixes entry,
// and what to write instead, or nil.
func CheckURLPrefix(raw string) error {
	_, err := normalisePrefix(raw)
	return err
}

// CheckUsername reports why name cannot be goauth.username, or nil.
func CheckUsername(name string) error {
	if strings.ContainsAny(name, ":\x00\r\n") {
		return &face.EntryError{Why: "a Basic username may not contain ':' or a control character"}
	}
	return nil
}

// normalisePrefix returns host[:port][/path] with the host in lower case
// and no trailing slash, the form the go command keys its cache by.
func normalisePrefix(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", &face.EntryError{Why: "not a URL", Instead: "https://go.example.com/private"}
	case u.Scheme != "https":
		e := &face.EntryError{Why: "the go command runs GOAUTH for HTTPS only"}
		if u.Host != "" && u.Opaque == "" {
			e.Instead = "https://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/")
		}
		return "", e
	case u.Host == "" || u.Opaque != "":
		return "", &face.EntryError{Why: "names no host", Instead: "https://go.example.com/private"}
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", &face.EntryError{Why: "a prefix has no user, query or fragment", Instead: "https://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/")}
	case strings.ContainsAny(s, " \t\x00\r\n"):
		return "", &face.EntryError{Why: "contains white space or a control character"}
	}
	p := strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/")
	if _, err := url.ParseRequestURI("https://" + p); err != nil {
		return "", &face.EntryError{Why: "the go command would not parse it"}
	}
	return p, nil
}

// Serve answers one run. args are the arguments the go command added (none
// on the first run, the URL on a re-run); in carries the 4xx response on a
// re-run. On an error other than *PartialError nothing has been written.
func (h *Helper) Serve(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	switch len(args) {
	case 0:
		return h.all(ctx, out)
	case 1:
		return h.retry(ctx, args[0], in, out)
	}
	return fmt.Errorf("%w: the go command passes at most one argument, the URL; got %d", ErrBadRequest, len(args))
}

// all writes a block for every profile, in profile order.
func (h *Helper) all(ctx context.Context, out io.Writer) error {
	var b bytes.Buffer
	var errs []error
	written := 0
	order := make([]int, len(h.rules))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return h.rules[order[a]].Profile < h.rules[order[b]].Profile })
	for _, i := range order {
		rule := h.rules[i]
		p, err := h.resolver.Credential(ctx, rule.Profile)
		if err == nil {
			err = writeBlock(&b, rule, rule.URLPrefixes, p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("profile %q: %w", rule.Profile, err))
			continue
		}
		written++
	}
	if _, err := out.Write(b.Bytes()); err != nil {
		return err
	}
	switch {
	case len(errs) == 0:
		return nil
	case written > 0:
		return &PartialError{Err: errors.Join(errs...)}
	}
	return fmt.Errorf("goauth: %w", errors.Join(errs...))
}

// retry answers a re-run after a 4xx for rawURL.
func (h *Helper) retry(ctx context.Context, rawURL string, in io.Reader, out io.Writer) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: the argument is not an https:// URL", ErrBadRequest)
	}
	status, err := readStatus(in)
	if err != nil {
		return err
	}
	i, ok := h.match(rawURL)
	if !ok {
		return nil // nothing to say: the go command tries its other GOAUTH entries
	}
	rule := h.rules[i]
	var p provider.Pair
	if rf, can := h.resolver.(face.Refresher); can && status == statusUnauthorized {
		p, err = rf.Refresh(ctx, rule.Profile)
	} else {
		p, err = h.resolver.Credential(ctx, rule.Profile)
	}
	if err != nil {
		return fmt.Errorf("goauth: profile %q: %w", rule.Profile, err)
	}
	var b bytes.Buffer
	if err := writeBlock(&b, rule, rule.URLPrefixes, p); err != nil {
		return fmt.Errorf("goauth: profile %q: %w", rule.Profile, err)
	}
	_, err = out.Write(b.Bytes())
	return err
}

// readStatus reads the response the go command wrote (a status line such
// as "HTTP/1.1 401 Unauthorized", header lines, a blank line) and returns
// its status code; 0 when in is empty (a person running the helper by
// hand). It parses by hand, not with net/http, so that the small front
// binary, which answers the first run, stays small.
func readStatus(in io.Reader) (int, error) {
	data, err := face.ReadAll(in, MaxInput, "standard input")
	if err != nil {
		return 0, fmt.Errorf("goauth: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return 0, nil
	}
	bad := fmt.Errorf("%w: standard input is not an HTTP status line and headers", ErrBadRequest)
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	proto, rest, _ := strings.Cut(lines[0], " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || len(code) != 3 || err != nil || status < 100 {
		return 0, bad
	}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		if name, _, ok := strings.Cut(l, ":"); !ok || name == "" || strings.ContainsAny(name, " \t") {
			return 0, bad
		}
	}
	return status, nil
}

// match returns the rule the go command would use for rawURL: it strips
// "https://" and a trailing slash, then looks the rest up whole, then
// without its last path segment, and so on down to the host.
func (h *Helper) match(rawURL string) (int, bool) {
	cur := strings.TrimSuffix(strings.TrimPrefix(rawURL, "https://"), "/")
	// Prefixes are stored with a lower-case host; so is the lookup's.
	host, rest, _ := strings.Cut(cur, "/")
	cur = strings.ToLower(host)
	if rest != "" {
		cur += "/" + rest
	}
	for {
		if i, ok := h.byPrefix[cur]; ok {
			return i, true
		}
		slash := strings.LastIndexByte(cur, '/')
		if slash < 0 {
			return 0, false
		}
		cur = cur[:slash]
	}
}

// writeBlock appends one credential set: the prefixes, a blank line, the
// header, a blank line.
func writeBlock(b *bytes.Buffer, rule Rule, prefixes []string, p provider.Pair) error {
	tok, err := face.Token(p, rule.Profile)
	if err != nil {
		return err
	}
	if !validHeaderValue(tok) {
		return errors.New("the auth token cannot be sent in an HTTP header (it holds a control character)")
	}
	value := "Bearer " + tok
	if rule.Username != "" {
		value = "Basic " + base64.StdEncoding.EncodeToString([]byte(rule.Username+":"+tok))
	}
	for _, pre := range prefixes {
		b.WriteString("https://" + pre + "\n")
	}
	b.WriteString("\nAuthorization: " + value + "\n\n")
	return nil
}

// validHeaderValue reports whether v survives the go command's header
// check: visible ASCII, spaces and tabs, no leading or trailing space.
func validHeaderValue(v string) bool {
	if v != strings.TrimSpace(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
