package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
)

// API versions the kubelet may speak; the answer uses the request's.
const (
	APIVersionV1       = "credentialprovider.kubelet.k8s.io/v1"
	APIVersionV1beta1  = "credentialprovider.kubelet.k8s.io/v1beta1"
	APIVersionV1alpha1 = "credentialprovider.kubelet.k8s.io/v1alpha1"
)

// Cache key types of a response.
const (
	CacheKeyImage    = "Image"
	CacheKeyRegistry = "Registry"
)

// DefaultUsername is reported when a rule names none.
const DefaultUsername = "credhelper"

// MaxInput bounds the request; it may carry a service account token and
// annotations besides the image.
const MaxInput = 1 << 20

// Errors Serve returns (wrapped) for requests it does not answer.
var (
	// ErrBadRequest reports input that is not a CredentialProviderRequest.
	ErrBadRequest = errors.New("kubelet: malformed CredentialProviderRequest")
	// ErrNoMatch reports an image no profile's pattern matches.
	ErrNoMatch = errors.New("kubelet: no credhelper profile matches the image")
)

// Rule maps image patterns to a profile.
type Rule struct {
	Profile string
	// MatchImages in the kubelet's matchImages syntax.
	MatchImages []string
	// Username reported with the token; empty means DefaultUsername.
	Username string
}

// Options configure a Helper: the minimum validity per profile and the
// clock, which decide how long the tool may cache a token.
type Options = face.CacheOptions

// Helper answers the kubelet for a fixed set of rules. It is safe for
// concurrent use if its Resolver is.
type Helper struct {
	resolver face.Resolver
	patterns []pattern
	opts     Options
}

type pattern struct {
	raw      string
	profile  string
	username string
	p        imageURL
}

// New returns a Helper for rules; it refuses a pattern the kubelet would
// not parse (or whose globs are malformed) and one pattern claimed by two
// profiles.
func New(r face.Resolver, rules []Rule, optFns ...func(*Options)) (*Helper, error) {
	opts := Options{}.Apply(optFns...)
	if r == nil {
		return nil, errors.New("kubelet: Resolver is nil")
	}
	h := &Helper{resolver: r, opts: opts}
	seen := map[string]string{}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, errors.New("kubelet: a rule names no profile")
		}
		if err := CheckUsername(rule.Username); err != nil {
			return nil, fmt.Errorf("kubelet: profile %q: kubelet.username: %w", rule.Profile, err)
		}
		user := rule.Username
		if user == "" {
			user = DefaultUsername
		}
		for _, raw := range rule.MatchImages {
			p, err := parsePattern(raw)
			if err != nil {
				return nil, fmt.Errorf("kubelet: profile %q: match_images entry %q: %w", rule.Profile, raw, err)
			}
			if other, dup := seen[raw]; dup && other != rule.Profile {
				return nil, fmt.Errorf("kubelet: profiles %q and %q both name image pattern %q: keep it in one profile's kubelet.match_images", other, rule.Profile, raw)
			}
			seen[raw] = rule.Profile
			h.patterns = append(h.patterns, pattern{raw: raw, profile: rule.Profile, username: user, p: p})
		}
	}
	return h, nil
}

// imageURL is an image reference or pattern split the kubelet's way.
type imageURL struct {
	labels []string
	port   string
	path   string
}

// parseImage splits s as the kubelet's parseSchemelessURL and splitURL do:
// parse "https://"+s as a URL; the host's labels (split at dots) and port,
// and the path.
func parseImage(s string) (imageURL, error) {
	u, err := url.Parse("https://" + s)
	if err != nil {
		return imageURL{}, err
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	return imageURL{labels: strings.Split(host, "."), port: port, path: u.Path}, nil
}

// CheckPattern reports why raw cannot be a kubelet.match_images entry,
// and what to write instead, or nil.
func CheckPattern(raw string) error {
	_, err := parsePattern(raw)
	return err
}

// CheckUsername reports why name cannot be kubelet.username, or nil.
func CheckUsername(name string) error {
	if strings.ContainsAny(name, "\x00\r\n") {
		return &face.EntryError{Why: "contains a control character"}
	}
	return nil
}

func parsePattern(raw string) (imageURL, error) {
	syntax := &face.EntryError{Why: "not in the kubelet's matchImages syntax, host[:port][/path] with globs in host labels", Instead: "*.registry.example.com"}
	if rest, ok := strings.CutPrefix(raw, "https://"); ok {
		return imageURL{}, &face.EntryError{Why: "a pattern has no scheme", Instead: rest}
	}
	if raw == "" || strings.Contains(raw, "://") || strings.ContainsAny(raw, " \t\x00\r\n") {
		return imageURL{}, syntax
	}
	u, err := url.Parse("https://" + raw)
	if err != nil {
		if host, _, _ := strings.Cut(raw, "/"); strings.Contains(host, ":") {
			name, _, _ := strings.Cut(host, ":")
			return imageURL{}, &face.EntryError{Why: "the port is not a number", Instead: name + ":5000"}
		}
		return imageURL{}, syntax
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return imageURL{}, &face.EntryError{Why: "the port is not a number from 0 to 65535", Instead: u.Hostname() + ":5000"}
		}
	}
	p, err := parseImage(raw)
	if err != nil {
		return imageURL{}, syntax
	}
	for _, l := range p.labels {
		if _, err := path.Match(l, ""); err != nil {
			return imageURL{}, &face.EntryError{Why: fmt.Sprintf("host label %q is not a valid glob", l)}
		}
	}
	return p, nil
}

// matches reports whether image matches pattern p, by the kubelet's rules.
func (p imageURL) matches(image imageURL) bool {
	if p.port != image.port || len(p.labels) != len(image.labels) || !strings.HasPrefix(image.path, p.path) {
		return false
	}
	for i, l := range p.labels {
		if ok, err := path.Match(l, image.labels[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// sameRegistry reports whether p's host and port match image's, whatever
// the paths.
func (p imageURL) sameRegistry(image imageURL) bool {
	q := p
	q.path = ""
	return q.matches(imageURL{labels: image.labels, port: image.port})
}

func (p imageURL) wildcards() int {
	n := 0
	for _, l := range p.labels {
		n += strings.Count(l, "*") + strings.Count(l, "?") + strings.Count(l, "[")
	}
	return n
}

// MatchImage reports whether image matches the kubelet pattern, by the
// rules of the kubelet's matchImages.
func MatchImage(pattern, image string) bool {
	p, err := parsePattern(pattern)
	if err != nil {
		return false
	}
	im, err := parseImage(image)
	return err == nil && p.matches(im)
}

// Request is what the kubelet sends; only what credhelper reads is declared
// (the service account token it may carry is not).
type Request struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Image      string `json:"image"`
}

// Response is the CredentialProviderResponse.
type Response struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	CacheKeyType  string                `json:"cacheKeyType"`
	CacheDuration string                `json:"cacheDuration,omitempty"`
	Auth          map[string]AuthConfig `json:"auth"`
}

// AuthConfig is one registry credential of a response.
type AuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Serve reads one request from in and writes the response to out. On error
// nothing has been written.
func (h *Helper) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	data, err := face.ReadAll(in, MaxInput, "standard input")
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%w: standard input is empty: the kubelet writes a CredentialProviderRequest there", ErrBadRequest)
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("%w: standard input is not a JSON object", ErrBadRequest)
	}
	switch req.APIVersion {
	case APIVersionV1, APIVersionV1beta1, APIVersionV1alpha1:
	default:
		return fmt.Errorf("%w: apiVersion %q: credhelper answers %s (set apiVersion in the kubelet's CredentialProviderConfig)", ErrBadRequest, req.APIVersion, APIVersionV1)
	}
	if req.Kind != "CredentialProviderRequest" {
		return fmt.Errorf("%w: kind %q, not CredentialProviderRequest", ErrBadRequest, req.Kind)
	}
	if req.Image == "" {
		return fmt.Errorf("%w: no image", ErrBadRequest)
	}
	im, err := parseImage(req.Image)
	if err != nil {
		return fmt.Errorf("%w: image %q does not parse", ErrBadRequest, req.Image)
	}
	best, err := h.match(req.Image, im)
	if errors.Is(err, ErrNoMatch) {
		// No credentials, said the kubelet's way: an empty auth, cached
		// for this image a short while (a non-zero exit would be logged
		// as an error and run again for every pull).
		return write(out, Response{APIVersion: req.APIVersion, Kind: "CredentialProviderResponse",
			CacheKeyType: CacheKeyImage, CacheDuration: NoMatchCacheDuration, Auth: map[string]AuthConfig{}})
	}
	if err != nil {
		return err
	}
	pair, err := h.resolver.Credential(ctx, best.profile)
	if err != nil {
		return fmt.Errorf("kubelet: profile %q: %w", best.profile, err)
	}
	tok, err := face.Token(pair, best.profile)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	res := Response{
		APIVersion:   req.APIVersion,
		Kind:         "CredentialProviderResponse",
		CacheKeyType: CacheKeyRegistry,
		Auth:         map[string]AuthConfig{best.raw: {Username: best.username, Password: tok}},
	}
	for _, p := range h.patterns {
		if p.p.path != "" && p.p.sameRegistry(im) {
			res.CacheKeyType = CacheKeyImage
			break
		}
	}
	if d := h.opts.CacheFor(pair, best.profile); d >= 0 {
		res.CacheDuration = strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return write(out, res)
}

// NoMatchCacheDuration is how long the kubelet may keep the empty answer
// for an image no profile matches: a profile added for it is used within
// a minute.
const NoMatchCacheDuration = "60s"

func write(out io.Writer, res Response) error {
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("kubelet: encode response: %w", err)
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// match returns the most specific pattern matching the image.
func (h *Helper) match(raw string, im imageURL) (pattern, error) {
	var best pattern
	found, tie := false, false
	for _, p := range h.patterns {
		if !p.p.matches(im) {
			continue
		}
		switch {
		case !found || len(p.p.path) > len(best.p.path) || len(p.p.path) == len(best.p.path) && p.p.wildcards() < best.p.wildcards():
			best, found, tie = p, true, false
		case len(p.p.path) == len(best.p.path) && p.p.wildcards() == best.p.wildcards() && p.profile != best.profile:
			tie = true
		}
	}
	if !found {
		return pattern{}, fmt.Errorf("%w: %q: add a pattern for it to a profile's kubelet.match_images, or narrow the kubelet's matchImages", ErrNoMatch, raw)
	}
	if tie {
		return pattern{}, fmt.Errorf("kubelet: several credhelper profiles match image %q equally: give one of them a longer or less general pattern", raw)
	}
	return best, nil
}
