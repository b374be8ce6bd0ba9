package docker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/credhelper/credhelper/provider"
)

// Messages docker's client recognises by their exact text.
const (
	// NotFoundMessage is what an unknown server URL answers.
	NotFoundMessage = "credentials not found in native keychain"
	// MissingServerURLMessage answers an empty server URL.
	MissingServerURLMessage = "no credentials server URL"
	// MissingUsernameMessage answers a store without a username.
	MissingUsernameMessage = "no credentials username"
)

// Errors Serve returns unwrapped, so that their text is exactly what docker
// expects on standard output.
var (
	// ErrNotFound reports a server URL no profile maps.
	ErrNotFound = errors.New(NotFoundMessage)
	// ErrMissingServerURL reports an empty server URL.
	ErrMissingServerURL = errors.New(MissingServerURLMessage)
	// ErrMissingUsername reports a store payload without a username.
	ErrMissingUsername = errors.New(MissingUsernameMessage)
)

// IdentityTokenUsername is the username that tells docker the Secret is an
// identity token rather than a password.
const IdentityTokenUsername = "<token>"

// MaxInput bounds what Serve reads from standard input. docker sends one
// server URL or one small JSON object; bufio.Scanner, which the reference
// helpers use, refuses lines over 64 KiB too.
const MaxInput = 64 << 10

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

// Registry maps one server URL to a profile.
type Registry struct {
	// ServerURL as written in the configuration: a host[:port], optionally
	// with an http(s) scheme and a path.
	ServerURL string
	// Username reported with the secret; empty means IdentityTokenUsername.
	Username string
	// Profile whose auth token is the secret.
	Profile string
}

// Credentials is the JSON object of the protocol.
type Credentials struct {
	ServerURL string
	Username  string
	Secret    string
}

// Options configure a Helper.
type Options struct {
	// Name is the program name printed by version; default
	// "docker-credential-credhelper".
	Name string
	// Version is the version printed by version; default "unknown".
	Version string
}

// Helper answers the protocol's actions for a fixed set of registries.
// It is safe for concurrent use if its Resolver is.
type Helper struct {
	resolver   Resolver
	registries []mapped
	opts       Options
}

type mapped struct {
	Registry
	url serverURL
}

// New returns a Helper serving registries through r. It rejects a server
// URL that does not parse and two profiles mapping the same host and path.
func New(r Resolver, registries []Registry, optFns ...func(*Options)) (*Helper, error) {
	opts := Options{Name: "docker-credential-credhelper", Version: "unknown"}
	for _, fn := range optFns {
		fn(&opts)
	}
	if r == nil {
		return nil, errors.New("docker: Resolver is nil")
	}
	if opts.Name == "" {
		return nil, errors.New("docker: Name is empty: leave it unset for the default")
	}
	h := &Helper{resolver: r, opts: opts}
	seen := map[string]string{}
	for _, reg := range registries {
		u, err := parseServerURL(reg.ServerURL)
		if err != nil {
			return nil, fmt.Errorf("docker: profile %q: server URL %q: %w", reg.Profile, reg.ServerURL, err)
		}
		if reg.Profile == "" {
			return nil, fmt.Errorf("docker: server URL %q names no profile", reg.ServerURL)
		}
		if err := CheckUsername(reg.Username); err != nil {
			return nil, fmt.Errorf("docker: profile %q: username %w", reg.Profile, err)
		}
		if reg.Username == "" {
			reg.Username = IdentityTokenUsername
		}
		k := u.host + u.path
		if other, dup := seen[k]; dup && other != reg.Profile {
			return nil, fmt.Errorf("docker: profiles %q and %q both map server URL %q: keep it in one profile's docker.server_urls", other, reg.Profile, reg.ServerURL)
		}
		seen[k] = reg.Profile
		h.registries = append(h.registries, mapped{Registry: reg, url: u})
	}
	return h, nil
}

// Serve performs one action: it reads the action's payload from in and
// writes the answer to out. On error nothing has been written to out, and
// the caller prints the error's text on standard output and exits 1, as
// docker-credential-helpers does.
func (h *Helper) Serve(ctx context.Context, action string, in io.Reader, out io.Writer) error {
	switch action {
	case "get":
		return h.get(ctx, in, out)
	case "store":
		return h.store(ctx, in)
	case "erase":
		return h.erase(in)
	case "list":
		return h.list(out)
	case "version":
		_, err := fmt.Fprintf(out, "%s (github.com/credhelper/credhelper) %s\n", h.opts.Name, h.opts.Version)
		return err
	}
	return fmt.Errorf("%s: unknown action: %s", h.opts.Name, action)
}

// Usage is the one-line usage text the reference helpers print.
func (h *Helper) Usage() string {
	return fmt.Sprintf("Usage: %s <store|get|erase|list|version>", h.opts.Name)
}

func readInput(in io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(in, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("docker: read standard input: %w", err)
	}
	if len(b) > MaxInput {
		return nil, fmt.Errorf("docker: standard input is over %d bytes: send one server URL", MaxInput)
	}
	return b, nil
}

func readServerURL(in io.Reader) (string, error) {
	b, err := readInput(in)
	if err != nil {
		return "", err
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return "", ErrMissingServerURL
	}
	return s, nil
}

// lookup returns the registry serving raw, or ErrNotFound.
func (h *Helper) lookup(raw string) (mapped, error) {
	u, err := parseServerURL(raw)
	if err != nil {
		return mapped{}, fmt.Errorf("docker: server URL: %w", err)
	}
	best, found := mapped{}, false
	for _, m := range h.registries {
		if m.url.matches(u) && (!found || len(m.url.path) > len(best.url.path)) {
			best, found = m, true
		}
	}
	if !found {
		return mapped{}, ErrNotFound
	}
	return best, nil
}

func (h *Helper) get(ctx context.Context, in io.Reader, out io.Writer) error {
	raw, err := readServerURL(in)
	if err != nil {
		return err
	}
	m, err := h.lookup(raw)
	if err != nil {
		return err
	}
	p, err := h.resolver.Credential(ctx, m.Profile)
	if err != nil {
		return fmt.Errorf("docker: profile %q: %w", m.Profile, err)
	}
	if p.AuthToken == "" {
		return fmt.Errorf("docker: profile %q has an empty auth token: store a pair with 'credhelper put --profile %s'", m.Profile, m.Profile)
	}
	b, err := json.Marshal(Credentials{ServerURL: raw, Username: m.Username, Secret: p.AuthToken})
	if err != nil {
		return fmt.Errorf("docker: encode answer: %w", err)
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

func (h *Helper) store(ctx context.Context, in io.Reader) error {
	b, err := readInput(in)
	if err != nil {
		return err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return errors.New("docker: store: standard input is not a JSON object {\"ServerURL\", \"Username\", \"Secret\"}")
	}
	if c.ServerURL == "" {
		return ErrMissingServerURL
	}
	if c.Username == "" {
		return ErrMissingUsername
	}
	m, err := h.lookup(c.ServerURL)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("docker: store: no credhelper profile maps %q and credhelper does not keep docker logins: add it to a profile's docker.server_urls, or name credhelper for chosen registries under \"credHelpers\" in ~/.docker/config.json instead of \"credsStore\"", c.ServerURL)
	}
	if err != nil {
		return err
	}
	p, err := h.resolver.Credential(ctx, m.Profile)
	if err != nil {
		return fmt.Errorf("docker: store: profile %q: %w", m.Profile, err)
	}
	if c.Username == m.Username && subtle.ConstantTimeCompare([]byte(c.Secret), []byte(p.AuthToken)) == 1 {
		return nil // docker storing back what get returned
	}
	return fmt.Errorf("docker: store: %q is served by credhelper profile %q, which docker login cannot change: store a new pair with 'credhelper put --profile %s'", c.ServerURL, m.Profile, m.Profile)
}

func (h *Helper) erase(in io.Reader) error {
	raw, err := readServerURL(in)
	if err != nil {
		return err
	}
	m, err := h.lookup(raw)
	if err != nil {
		return err
	}
	return fmt.Errorf("docker: erase: %q is served by credhelper profile %q and is not deleted by docker logout: remove it from the profile's docker.server_urls to stop serving it", raw, m.Profile)
}

func (h *Helper) list(out io.Writer) error {
	l := make(map[string]string, len(h.registries))
	for _, m := range h.registries {
		l[m.ServerURL] = m.Username
	}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("docker: encode list: %w", err)
	}
	_, err = out.Write(append(b, '\n'))
	return err
}
