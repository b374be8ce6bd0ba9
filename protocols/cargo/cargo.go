package cargo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/credhelper/credhelper/protocols/face"
)

// ProtocolVersion is the one version of the protocol credhelper speaks.
const ProtocolVersion = 1

// MaxLine bounds one request line; cargo sends a registry and a few names.
const MaxLine = 1 << 20

// Error kinds of the protocol.
const (
	KindURLNotSupported       = "url-not-supported"
	KindNotFound              = "not-found"
	KindOperationNotSupported = "operation-not-supported"
	KindOther                 = "other"
)

// Rule maps registries to a profile.
type Rule struct {
	// Profile whose auth token is the registry token.
	Profile string
	// IndexURLs as cargo's configuration writes them
	// ("sparse+https://host/index/"); "sparse+" and a trailing slash do
	// not matter.
	IndexURLs []string
	// Registries by their name in cargo's configuration.
	Registries []string
}

// Options configure a Helper: the minimum validity per profile and the
// clock, which decide how long the tool may cache a token.
type Options = face.CacheOptions

// Helper answers cargo's requests for a fixed set of rules. It is safe for
// concurrent use if its Resolver is.
type Helper struct {
	resolver face.Resolver
	byURL    map[string]string // normalised index URL -> profile
	byName   map[string]string // registry name -> profile
	opts     Options
	fail     string // when set, every request is answered with this error
}

// Failing returns a Helper that still speaks the protocol but answers every
// request with an error of kind "other" carrying cause's message, for a
// provider whose configuration could not be read: cargo shows the message
// instead of a broken pipe.
func Failing(cause error) *Helper {
	return &Helper{fail: "credhelper: " + oneLine(cause.Error())}
}

// New returns a Helper for rules; it refuses an index URL that is not an
// http(s) URL and a registry two profiles claim.
func New(r face.Resolver, rules []Rule, optFns ...func(*Options)) (*Helper, error) {
	opts := Options{}.Apply(optFns...)
	if r == nil {
		return nil, errors.New("cargo: Resolver is nil")
	}
	h := &Helper{resolver: r, byURL: map[string]string{}, byName: map[string]string{}, opts: opts}
	claim := func(m map[string]string, key, raw, profile, setting string) error {
		if other, dup := m[key]; dup && other != profile {
			return fmt.Errorf("cargo: profiles %q and %q both name %s %q: keep it in one profile's cargo.%s", other, profile, strings.TrimSuffix(setting, "s"), raw, setting)
		}
		m[key] = profile
		return nil
	}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, errors.New("cargo: a rule names no profile")
		}
		for _, raw := range rule.IndexURLs {
			u, err := normaliseIndex(raw)
			if err != nil {
				return nil, fmt.Errorf("cargo: profile %q: index_urls entry %q: %w", rule.Profile, raw, err)
			}
			if err := claim(h.byURL, u, raw, rule.Profile, "index_urls"); err != nil {
				return nil, err
			}
		}
		for _, name := range rule.Registries {
			if err := CheckRegistry(name); err != nil {
				return nil, fmt.Errorf("cargo: profile %q: registries entry %q: %w", rule.Profile, name, err)
			}
			if err := claim(h.byName, name, name, rule.Profile, "registries"); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// CheckIndexURL reports why raw cannot be a cargo.index_urls entry, and
// what to write instead, or nil.
func CheckIndexURL(raw string) error {
	_, err := normaliseIndex(raw)
	return err
}

// CheckRegistry reports why name cannot be a cargo.registries entry, or
// nil.
func CheckRegistry(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\x00\r\n") {
		return &face.EntryError{Why: "not a registry name as cargo's configuration writes it ([registries.NAME])", Instead: "internal"}
	}
	if strings.Contains(name, "://") {
		return &face.EntryError{Why: "a registry name, not an index URL (those go in index_urls)", Instead: "internal"}
	}
	return nil
}

// normaliseIndex drops "sparse+" and trailing slashes and lower-cases the
// scheme and host.
func normaliseIndex(raw string) (string, error) {
	u, err := url.Parse(strings.TrimPrefix(strings.TrimSpace(raw), "sparse+"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", &face.EntryError{Why: "not an http(s) index URL", Instead: "sparse+https://cargo.example.com/index/"}
	}
	return strings.ToLower(u.Scheme+"://"+u.Host) + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// Request is one line cargo sends; only what credhelper reads is declared.
type Request struct {
	V        int      `json:"v"`
	Registry Registry `json:"registry"`
	Kind     string   `json:"kind"`
	// Operation is read, publish, yank, unyank or owners for a get.
	Operation string   `json:"operation,omitempty"`
	Args      []string `json:"args,omitempty"`
}

// Registry names the registry a request is for.
type Registry struct {
	IndexURL string `json:"index-url"`
	Name     string `json:"name,omitempty"`
}

// Token is the answer to a get.
type Token struct {
	Kind                 string `json:"kind"`
	Token                string `json:"token"`
	Cache                string `json:"cache"`
	Expiration           int64  `json:"expiration,omitempty"`
	OperationIndependent bool   `json:"operation_independent"`
}

// Error is the protocol's error object.
type Error struct {
	Kind     string   `json:"kind"`
	Message  string   `json:"message,omitempty"`
	CausedBy []string `json:"caused-by,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "cargo: " + e.Kind
	}
	return "cargo: " + e.Kind + ": " + e.Message
}

type result struct {
	Ok  *Token `json:"Ok,omitempty"`
	Err *Error `json:"Err,omitempty"`
}

// Serve writes the hello and answers request lines from in until end of
// file. It returns an error only when out cannot be written or in cannot be
// read; every protocol error is an answer.
func (h *Helper) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if _, err := io.WriteString(out, `{"v":[1]}`+"\n"); err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 64<<10)
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		var ans result
		tooLarge := errors.Is(err, face.ErrTooLarge)
		switch {
		case tooLarge:
			ans.Err = &Error{Kind: KindOther, Message: fmt.Sprintf("credhelper: a request line is over %d bytes", MaxLine)}
		case err != nil:
			return fmt.Errorf("cargo: read standard input: %w", err)
		default:
			ans = h.answer(ctx, line)
		}
		b, err := json.Marshal(ans)
		if err != nil {
			return fmt.Errorf("cargo: encode answer: %w", err)
		}
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
		if tooLarge {
			return nil // the rest of an oversized line cannot be resynchronised
		}
	}
}

// readLine returns one line without its newline; a last line without one
// counts. It consumes an oversized line whole and reports face.ErrTooLarge.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLine+1 {
			return nil, face.ErrTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		}
		return nil, err
	}
}

func (h *Helper) answer(ctx context.Context, line []byte) result {
	fail := func(kind, format string, args ...any) result {
		return result{Err: &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}}
	}
	if h.fail != "" {
		return fail(KindOther, "%s", h.fail)
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return fail(KindOther, "credhelper: a request line is not the JSON object cargo sends: run credhelper as a credential provider (credential-provider = \"credhelper\"), not by hand")
	}
	if req.V != ProtocolVersion {
		return fail(KindOther, "credhelper: unsupported protocol version %d: credhelper speaks version %d", req.V, ProtocolVersion)
	}
	if err := checkArgs(req.Args); err != nil {
		return result{Err: err}
	}
	profile, ok := h.match(req.Registry)
	switch {
	case !ok:
		return result{Err: &Error{Kind: KindURLNotSupported}}
	case req.Kind == "login" || req.Kind == "logout":
		return fail(KindOperationNotSupported, "credhelper owns the token of this registry (profile %q): store a new pair with 'credhelper put --profile %s' instead of cargo %s", profile, profile, req.Kind)
	case req.Kind != "get":
		return fail(KindOperationNotSupported, "credhelper answers get requests only")
	}
	p, err := h.resolver.Credential(ctx, profile)
	if err != nil {
		return fail(KindOther, "credhelper: profile %q: %s", profile, oneLine(err.Error()))
	}
	tok, err := face.Token(p, profile)
	if err != nil {
		return fail(KindOther, "credhelper: %s", err.Error())
	}
	t := &Token{Kind: "get", Token: tok, Cache: "session", OperationIndependent: true}
	switch d := h.opts.CacheFor(p, profile); {
	case d == 0:
		t.Cache = "never"
	case d > 0:
		t.Cache, t.Expiration = "expires", h.opts.Expiry(p, profile).Unix()
	}
	return result{Ok: t}
}

// checkArgs accepts what cargo passes from credential-provider: nothing, or
// "cargo" when the provider is written ["credhelper", "cargo"].
func checkArgs(args []string) *Error {
	if len(args) == 0 || len(args) == 1 && args[0] == "cargo" {
		return nil
	}
	return &Error{Kind: KindOther, Message: fmt.Sprintf("credhelper: unexpected provider arguments %q: write credential-provider = \"credhelper\" (profiles are chosen by the registry, in credhelper's [profiles.NAME.cargo] tables)", args)}
}

// match returns the profile naming r, by name first, then by index URL.
func (h *Helper) match(r Registry) (string, bool) {
	if p, ok := h.byName[r.Name]; ok && r.Name != "" {
		return p, true
	}
	u, err := normaliseIndex(r.IndexURL)
	if err != nil {
		return "", false
	}
	p, ok := h.byURL[u]
	return p, ok
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
