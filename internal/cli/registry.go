package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/env"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
)

// schemeKind says whether a scheme names a backend or an issuer; it is
// also the setting (and flag) that takes it.
type schemeKind string

const (
	backendScheme schemeKind = "backend"
	issuerScheme  schemeKind = "issuer"
)

// scheme is one entry of the registry: a backend or issuer scheme, how it
// is written, which settings tables it reads, and how to open it. Spec
// parsing, --help, shell completion, `config check`, wiring and the README
// all read the registry, so adding a backend is one package plus one entry
// here.
type scheme struct {
	kind schemeKind
	name string
	// usage is how a spec of this scheme is written ("file:PATH"); rest,
	// the part after the colon, may be left out when restOptional.
	usage        string
	restOptional bool
	// help says what it is, in one line.
	help string
	// tables are the per-kind settings tables it reads ("vault").
	tables []string
	// check finds mistakes in the resolved profile before anything is
	// opened, naming settings as the user wrote them; nil: none.
	check func(s spec, r *config.Resolved) error
	// openBackend or openIssuer builds it from the spec and the resolved
	// profile; things to close go into w.closers.
	openBackend func(ctx context.Context, a *app, s spec, w *wired) (provider.Backend, string, error)
	openIssuer  func(ctx context.Context, a *app, s spec, w *wired) (provider.Issuer, error)
}

// registry returns every scheme, backends first, in the order --help
// lists them.
func registry() []scheme {
	return []scheme{
		{
			kind: backendScheme, name: "file", usage: "file:PATH",
			help: "one JSON file per credential, locked with flock (the embedded default)",
			openBackend: func(_ context.Context, a *app, s spec, _ *wired) (provider.Backend, string, error) {
				b, err := file.New(func(o *file.Options) { o.Logger = a.logger })
				return b, backendKey(s), err
			},
		},
		{
			kind: backendScheme, name: "env", usage: "env:PREFIX",
			help: "PREFIX_API_KEY, PREFIX_REFRESH_TOKEN, PREFIX_VALID_UNTIL (or one JSON variable PREFIX); read-only",
			openBackend: func(_ context.Context, _ *app, s spec, _ *wired) (provider.Backend, string, error) {
				return env.New(), s.rest, nil
			},
		},
		{
			kind: backendScheme, name: "awssm", usage: "awssm:NAME_OR_ARN", tables: []string{"aws"},
			help: "an AWS Secrets Manager secret",
			openBackend: func(ctx context.Context, a *app, s spec, w *wired) (provider.Backend, string, error) {
				p := w.profile
				b, err := awssm.NewFromConfig(ctx, func(o *awssm.Options) {
					o.Region, o.Profile, o.Logger = p.AWS.Region, p.AWS.Profile, a.logger
				})
				return b, s.rest, err
			},
		},
		{
			kind: backendScheme, name: "vault", usage: "vault:MOUNT/PATH", tables: []string{"vault"},
			help: "a HashiCorp Vault KV version 2 secret",
			openBackend: func(_ context.Context, a *app, s spec, w *wired) (provider.Backend, string, error) {
				v := w.profile.Vault
				b, err := vault.NewFromEnv(func(o *vault.Options) {
					o.Logger = a.logger
					o.TokenFile = expandHome(v.TokenFile)
					o.AppRole = vault.AppRole{RoleID: v.RoleID, SecretIDFile: expandHome(v.SecretIDFile), MountPath: v.AppRoleMount}
				})
				if err != nil {
					return nil, "", err
				}
				w.closers = append(w.closers, b.Close)
				return b, s.rest, nil
			},
		},
		{
			kind: backendScheme, name: "plugin", usage: "plugin:NAME:KEY",
			help:  "a backend served by the plugin [plugins.NAME]",
			check: checkPluginSpec,
			openBackend: func(ctx context.Context, a *app, s spec, w *wired) (provider.Backend, string, error) {
				name, _, _ := strings.Cut(s.rest, ":")
				pl, err := a.openPlugin(name, "backend", w)
				if err != nil {
					return nil, "", err
				}
				// Starts the plugin to ask what its backend declares.
				b, err := pl.Backend(ctx)
				return b, backendKey(s), err
			},
		},
		{
			kind: issuerScheme, name: "dev", usage: "dev:HOST:PORT",
			help: "the built-in development issuer (credhelper dev-issuer), plaintext on loopback",
			openIssuer: func(_ context.Context, a *app, s spec, w *wired) (provider.Issuer, error) {
				return a.momentoIssuer(w, func(o *momento.Options) { o.Addr, o.Insecure, o.Logger = s.rest, true, a.logger })
			},
		},
		{
			kind: issuerScheme, name: "momento", usage: "momento[:HOST:PORT]", restOptional: true,
			help: "Momento's control plane; the host comes from the key unless given",
			openIssuer: func(_ context.Context, a *app, s spec, w *wired) (provider.Issuer, error) {
				p := w.profile
				tlsConf, err := loadCA(p.CAFile)
				if err != nil {
					return nil, err
				}
				return a.momentoIssuer(w, func(o *momento.Options) {
					o.Addr, o.Insecure, o.TLSConfig, o.Logger = s.rest, p.Insecure, tlsConf, a.logger
				})
			},
		},
		{
			kind: issuerScheme, name: "oauth2", usage: "oauth2:TOKEN_URL", tables: []string{"oauth2"},
			help: "an OAuth2 token endpoint (RFC 6749 refresh grant with rotation)",
			check: func(s spec, r *config.Resolved) error {
				o := r.Profile.OAuth2
				if o.ClientID == "" {
					return fmt.Errorf("%s %s needs a client id: %s", r.Describe("issuer"), s.raw, r.HowToSet("oauth2.client_id"))
				}
				switch oauth2.AuthStyle(o.AuthStyle) {
				case oauth2.AuthBasic, oauth2.AuthPost, oauth2.AuthAuto:
				default:
					return fmt.Errorf("%s is %q: use basic, post or auto", r.Describe("oauth2.auth_style"), o.AuthStyle)
				}
				if o.ClientSecretEnv != "" && o.ClientSecretFile != "" {
					return fmt.Errorf("%s and %s are both set: keep one", r.Describe("oauth2.client_secret_env"), r.Describe("oauth2.client_secret_file"))
				}
				return nil
			},
			openIssuer: func(_ context.Context, a *app, s spec, w *wired) (provider.Issuer, error) {
				o := w.profile.OAuth2
				return oauth2.New(s.rest, func(opt *oauth2.Options) {
					opt.ClientID, opt.Scopes = o.ClientID, o.Scopes
					// Read at each request: only refreshing needs the
					// secret (status and put of a stored pair do not), and
					// a rotated secret file is picked up.
					opt.ClientSecretSource = func(context.Context) (string, error) { return clientSecret(w.resolved) }
					opt.Logger = a.logger.With(slog.String("profile", w.name))
					opt.AuthStyle = oauth2.AuthStyle(o.AuthStyle)
					opt.DefaultLifetime = w.profile.DefaultLifetime.Duration
					opt.IntrospectionURL = o.IntrospectionURL
				})
			},
		},
		{
			kind: issuerScheme, name: "plugin", usage: "plugin:NAME:ARG",
			help:  "an issuer served by the plugin [plugins.NAME]",
			check: checkPluginSpec,
			openIssuer: func(ctx context.Context, a *app, s spec, w *wired) (provider.Issuer, error) {
				name, _, _ := strings.Cut(s.rest, ":")
				pl, err := a.openPlugin(name, "issuer", w)
				if err != nil {
					if !errors.As(err, new(usageError)) {
						err = &issuerStartError{err} // its binary fails its pin or checks
					}
					return nil, err
				}
				// Starts the plugin to ask what its issuer declares (can it
				// generate, introspect; its refresh policy). A plugin that
				// does not start leaves a usable pair servable (wireToServe).
				i, err := pl.Issuer(ctx)
				if err != nil {
					return nil, &issuerStartError{err}
				}
				return i, nil
			},
		},
	}
}

// schemesOf returns the registry's schemes of kind.
func schemesOf(kind schemeKind) []scheme {
	var out []scheme
	for _, s := range registry() {
		if s.kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// schemeUsages lists how the schemes of kind are written, for help text.
func schemeUsages(kind schemeKind) string {
	var us []string
	for _, s := range schemesOf(kind) {
		us = append(us, s.usage)
	}
	return strings.Join(us, ", ")
}

// spec is a parsed backend or issuer setting: its scheme's registry entry
// and the part after the first colon.
type spec struct {
	scheme scheme
	raw    string
	rest   string
}

// parseSpec parses a backend or issuer setting against the registry. The
// error states what is wrong with the value; the caller names the setting.
func parseSpec(kind schemeKind, s string) (spec, error) {
	name, rest, found := strings.Cut(s, ":")
	var names []string
	for _, sc := range schemesOf(kind) {
		names = append(names, sc.name)
		if sc.name != name {
			continue
		}
		if (!found || rest == "") && !sc.restOptional {
			return spec{}, fmt.Errorf("%q needs a value after %q: write it as %s", s, name+":", sc.usage)
		}
		return spec{scheme: sc, raw: s, rest: rest}, nil
	}
	msg := fmt.Sprintf("%q has no %s scheme this command knows: use %s", s, kind, schemeUsages(kind))
	if near := config.Nearest(name, names); near != "" {
		msg = fmt.Sprintf("%q has no %s scheme this command knows: did you mean %s:?", s, kind, near)
	}
	return spec{}, fmt.Errorf("%s", msg)
}

// checkPluginSpec checks plugin:NAME:KEY (or :ARG).
func checkPluginSpec(s spec, r *config.Resolved) error {
	name, key, ok := strings.Cut(s.rest, ":")
	if !ok || name == "" || key == "" {
		return fmt.Errorf("%s %q: write it as %s", r.Describe(string(s.scheme.kind)), s.raw, s.scheme.usage)
	}
	return nil
}
