package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/env"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// wired is one profile's backend, key and issuer, built from flags, the
// environment and the config file, and what must be closed afterwards.
type wired struct {
	name    string
	profile config.Profile
	backend provider.Backend
	key     string
	issuer  provider.Issuer // nil: never refreshed
	closers []func() error
}

// Close releases plugin processes and clients.
func (w *wired) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		_ = w.closers[i]()
	}
}

// profileSettings merges the named profile with flag and environment
// overrides.
func (a *app) profileSettings(name string) (config.Profile, *config.File, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return config.Profile{}, nil, err
	}
	p, err := cfg.Profile(name)
	if err != nil {
		return config.Profile{}, nil, usageError{err}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&p.Backend, a.backend)
	set(&p.Issuer, a.issuer)
	set(&p.Endpoint, a.endpoint)
	set(&p.Region, a.region)
	set(&p.AWSProfile, a.awsProfile)
	set(&p.JournalDir, a.journalDir)
	set(&p.CAFile, a.caFile)
	set(&p.ClientID, a.clientID)
	set(&p.ClientSecretEnv, a.secretEnv)
	set(&p.IntrospectionURL, a.introURL)
	p.Insecure = p.Insecure || a.insecure
	dur := func(dst *config.Duration, v time.Duration) {
		if v != 0 {
			dst.Duration = v
		}
	}
	dur(&p.MinValidity, a.minValid)
	dur(&p.RefreshFloor, a.floor)
	dur(&p.LeaseDuration, a.lease)
	dur(&p.IssuerTimeout, a.issuerTO)
	dur(&p.ClockSkew, a.skew)
	dur(&p.DefaultLifetime, a.defLife)
	p.UnsafeRefreshInMemory = p.UnsafeRefreshInMemory || a.unsafeMem
	if a.fraction != 0 {
		p.RefreshFraction = a.fraction
	}
	if p.Backend == "" {
		return p, cfg, usagef("no backend for profile %q: pass --backend (e.g. file:./cred.json) or set backend in the profile", name)
	}
	return p, cfg, nil
}

// wire builds the profile's backend and, if configured, its issuer.
func (a *app) wire(ctx context.Context, name string) (*wired, error) {
	p, cfg, err := a.profileSettings(name)
	if err != nil {
		return nil, err
	}
	w := &wired{name: name, profile: p}
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	bs, err := config.ParseSpec(p.Backend, config.BackendSchemes)
	if err != nil {
		return nil, usagef("--backend: %v", err)
	}
	if w.backend, w.key, err = a.sharedBackend(ctx, bs, p, cfg, w); err != nil {
		return nil, err
	}
	if p.Issuer != "" {
		is, err := config.ParseSpec(p.Issuer, config.IssuerSchemes)
		if err != nil {
			return nil, usagef("--issuer: %v", err)
		}
		if w.issuer, err = a.sharedIssuer(is, p, cfg, w); err != nil {
			return nil, err
		}
	}
	ok = true
	return w, nil
}

func (a *app) openBackend(ctx context.Context, s config.Spec, p config.Profile, cfg *config.File, w *wired) (provider.Backend, string, error) {
	switch s.Scheme {
	case "file":
		b, err := file.New(func(o *file.Options) { o.Logger = a.logger })
		return b, backendKey(s), err
	case "env":
		return env.New(), s.Rest, nil
	case "awssm":
		b, err := awssm.NewFromConfig(ctx, func(o *awssm.Options) {
			o.Region, o.Profile, o.Logger = p.Region, p.AWSProfile, a.logger
		})
		return b, s.Rest, err
	case "vault":
		b, err := vault.NewFromEnv(func(o *vault.Options) {
			o.Logger = a.logger
			o.TokenFile = expandHome(p.VaultTokenFile)
			o.AppRole = vault.AppRole{RoleID: p.VaultRoleID, SecretIDFile: expandHome(p.VaultSecretIDFile), MountPath: p.VaultAppRoleMount}
		})
		if err != nil {
			return nil, "", err
		}
		w.closers = append(w.closers, b.Close)
		return b, s.Rest, nil
	case "plugin":
		name, _, _ := strings.Cut(s.Rest, ":")
		pl, err := a.openPlugin(name, cfg)
		if err != nil {
			return nil, "", err
		}
		w.closers = append(w.closers, pl.Close)
		return pl.Backend(), backendKey(s), nil
	}
	return nil, "", usagef("unknown backend scheme %q", s.Scheme)
}

func (a *app) openIssuer(s config.Spec, p config.Profile, cfg *config.File, w *wired) (provider.Issuer, error) {
	switch s.Scheme {
	case "dev", "momento":
		var tlsConf *tls.Config
		if s.Scheme == "momento" {
			var err error
			if tlsConf, err = loadCA(p.CAFile); err != nil {
				return nil, err
			}
		}
		i, err := momento.New(func(o *momento.Options) {
			o.Addr, o.Insecure, o.TLSConfig, o.Logger = s.Rest, p.Insecure || s.Scheme == "dev", tlsConf, a.logger
			if a.clients != nil {
				// The agent: profiles share the issuer, and a round of
				// refreshes shares its connection.
				o.ShareIdle = agentConnIdle
			}
		})
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, i.Close) // its cached connections
		return i, nil
	case "oauth2":
		secret, err := clientSecret(p)
		if err != nil {
			return nil, err
		}
		return oauth2.New(s.Rest, func(o *oauth2.Options) {
			o.ClientID, o.ClientSecret, o.Scopes = p.ClientID, secret, p.Scopes
			o.Logger = a.logger.With(slog.String("profile", w.name))
			if p.DefaultLifetime.Duration != 0 {
				o.DefaultLifetime = p.DefaultLifetime.Duration
			}
			o.IntrospectionURL = p.IntrospectionURL
			if p.AuthStyle != "" {
				o.AuthStyle = oauth2.AuthStyle(p.AuthStyle)
			}
		})
	case "plugin":
		name, _, _ := strings.Cut(s.Rest, ":")
		pl, err := a.openPlugin(name, cfg)
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, pl.Close)
		return pl.Issuer(), nil
	}
	return nil, usagef("unknown issuer scheme %q", s.Scheme)
}

func (a *app) openPlugin(name string, cfg *config.File) (*plugins.Plugin, error) {
	def, ok := cfg.Plugins[name]
	if !ok {
		return nil, usagef("no plugin %q: add [plugins.%s] with path and sha256 to the config file", name, name)
	}
	path := expandHome(def.Path)
	if path == "" {
		path = filepath.Join(config.PluginDir(), "credhelper-plugin-"+name)
	}
	return plugins.Open(plugins.Spec{Name: name, Path: path, Args: def.Args, SHA256: def.SHA256, Env: def.Env},
		func(o *plugins.Options) { o.Logger = a.logger })
}

// clientSecret reads the OAuth2 client secret from the variable or file the
// profile names; secrets are never flags (they would show in ps).
func clientSecret(p config.Profile) (string, error) {
	switch {
	case p.ClientSecretEnv != "":
		v, ok := os.LookupEnv(p.ClientSecretEnv)
		if !ok {
			return "", usagef("client secret variable $%s is not set", p.ClientSecretEnv)
		}
		return cleanSecret(v, "$"+p.ClientSecretEnv)
	case p.ClientSecretFile != "":
		b, err := os.ReadFile(expandHome(p.ClientSecretFile))
		if err != nil {
			return "", fmt.Errorf("client secret file: %w", err)
		}
		return cleanSecret(string(b), "client_secret_file "+p.ClientSecretFile)
	}
	return "", nil
}

// cleanSecret trims one trailing newline from a secret read from source and
// refuses other control characters, as a usage error naming the source.
func cleanSecret(v, source string) (string, error) {
	v, err := provider.CleanSecret(v, source)
	if err != nil {
		return "", usageError{err}
	}
	return v, nil
}

func loadCA(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(expandHome(path))
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--ca-file %s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// engine wraps the wired backend and issuer in the refresh engine with the
// profile's settings; optFns run after them.
func (a *app) engine(w *wired, optFns ...func(*refresh.Options)) (*refresh.Engine, error) {
	p := w.profile
	boot, err := a.bootstrapper(w)
	if err != nil {
		return nil, err
	}
	e, err := refresh.New(w.backend, w.issuer, w.key, append([]func(*refresh.Options){func(o *refresh.Options) {
		o.Logger = a.logger
		o.Bootstrap = boot
		o.JournalDir = p.JournalDir
		if p.MinValidity.Duration != 0 {
			o.MinValidity = p.MinValidity.Duration
		}
		if p.RefreshFloor.Duration != 0 {
			o.RefreshFloor = p.RefreshFloor.Duration
		}
		if p.RefreshFraction != 0 {
			o.RefreshFraction = p.RefreshFraction
		}
		if p.LeaseDuration.Duration != 0 {
			o.LeaseDuration = p.LeaseDuration.Duration
		}
		if p.IssuerTimeout.Duration != 0 {
			o.IssuerTimeout = p.IssuerTimeout.Duration
		}
		if p.ClockSkew.Duration != 0 {
			o.ClockSkew = p.ClockSkew.Duration
		}
	}}, optFns...)...)
	if err != nil {
		return nil, usageError{err}
	}
	return e, nil
}

// credential resolves one profile's current pair, from a running agent if
// there is one, else directly through the engine, checking the endpoint if
// one is required. Every face resolves credentials through it.
func (a *app) credential(ctx context.Context, name string) (provider.Pair, error) {
	if p, ok, err := a.viaAgent(ctx, name); ok {
		return p, err
	}
	w, err := a.wire(ctx, name)
	if err != nil {
		return provider.Pair{}, err
	}
	defer w.Close()
	// A one-shot process refreshes as soon as the pair is in its window:
	// it holds nothing between calls, so spreading its refresh point over
	// the window (as long-lived holders do against herds) would only make
	// each call's outcome a matter of chance.
	e, err := a.engine(w, func(o *refresh.Options) { o.Jitter = 0 })
	if err != nil {
		return provider.Pair{}, err
	}
	p, err := e.Credential(ctx)
	// Close waits for a refresh started in the background so that a
	// short-lived process never abandons a claimed refresh.
	if cerr := e.Close(); err == nil && cerr != nil {
		a.logger.Warn("credhelper: " + cerr.Error())
	}
	if err != nil {
		return provider.Pair{}, err
	}
	if w.profile.Endpoint != "" {
		if err := p.CheckEndpoint(w.profile.Endpoint); err != nil {
			return provider.Pair{}, err
		}
	}
	return p, nil
}
