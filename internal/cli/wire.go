package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// wired is one profile's backend, key and issuer, built from its resolved
// settings, and what must be closed afterwards.
type wired struct {
	name     string
	profile  *config.Profile // &resolved.Profile: the settings, not a copy of them
	resolved *config.Resolved
	cfg      *config.File
	backend  provider.Backend
	key      string
	issuer   provider.Issuer // nil: never refreshed
	// issuerErr is why a configured issuer could not be opened
	// (wireToServe): the pair is served while usable, never refreshed.
	issuerErr error
	closers   []func() error
}

// Close releases plugin processes and clients.
func (w *wired) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		_ = w.closers[i]()
	}
}

// resolve is the one resolve step: it merges flags, the environment, the
// profile and the defaults into one profile and checks it, naming every
// setting as the user wrote it. Mistakes are usage errors.
func (a *app) resolve(name string) (*config.Resolved, *config.File, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	r, err := cfg.Resolve(name, &a.flags, &a.env)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	a.warnDeprecated(cfg, r.Name)
	if err := checkResolved(r, cfg); err != nil {
		return r, cfg, err
	}
	return r, cfg, nil
}

// checkResolved finds the mistakes a resolved profile can have: a missing
// or malformed backend or issuer, what their schemes check, and settings
// the refresh engine would refuse, said in the user's words.
func checkResolved(r *config.Resolved, cfg *config.File) error {
	p := r.Profile
	if p.Backend == "" {
		return &noBackendError{r: r, cfg: cfg}
	}
	for _, kind := range []schemeKind{backendScheme, issuerScheme} {
		v := p.Backend
		if kind == issuerScheme {
			v = p.Issuer
		}
		if v == "" {
			continue
		}
		s, err := parseSpec(kind, v)
		if err != nil {
			return usagef("%s: %v", r.Describe(string(kind)), err)
		}
		if s.scheme.check != nil {
			if err := s.scheme.check(s, r); err != nil {
				return usageError{err}
			}
		}
	}
	return checkEngineSettings(r)
}

// minLease is the shortest lease the refresh engine accepts.
const minLease = 30 * time.Millisecond

// checkEngineSettings holds the refresh settings to the engine's rules
// (refresh.Options) before the engine sees them, so the message names
// --min-validity, not MinValidity.
func checkEngineSettings(r *config.Resolved) error {
	p := r.Profile
	val := func(path string, v any) string { return fmt.Sprintf("%s (%v)", r.Describe(path), v) }
	switch {
	case p.RefreshFraction < 0 || p.RefreshFraction >= 1:
		return usagef("%s must be at least 0 and less than 1", val("refresh_fraction", p.RefreshFraction))
	case p.RefreshFloor.Duration <= 0:
		return usagef("%s must be positive", val("refresh_floor", p.RefreshFloor))
	case p.MinValidity.Duration+refresh.CoarseSlack >= p.RefreshFloor.Duration:
		return usagef("%s plus %v must be less than %s, or pairs would expire before they are refreshed: lower the one or raise the other",
			val("min_validity", p.MinValidity), refresh.CoarseSlack, val("refresh_floor", p.RefreshFloor))
	case p.LeaseDuration.Duration < minLease:
		return usagef("%s must be at least %v", val("lease_duration", p.LeaseDuration), minLease)
	case p.IssuerTimeout.Duration <= 0:
		return usagef("%s must be positive", val("issuer_timeout", p.IssuerTimeout))
	}
	return nil
}

// noBackendError reports a profile that names no backend.
type noBackendError struct {
	r   *config.Resolved
	cfg *config.File
}

func (e *noBackendError) Error() string {
	name := e.r.Name
	switch {
	case e.cfg.Missing:
		return fmt.Sprintf("no backend for profile %q: pass --backend (such as file:./cred.json), or create %s with a profile, for example:", name, e.cfg.Path)
	case e.cfg.Path == "":
		return fmt.Sprintf("no backend for profile %q: pass --backend (such as file:./cred.json)", name)
	}
	if _, ok := e.cfg.Profiles[name]; !ok {
		return fmt.Sprintf("no backend: pass --backend (such as file:./cred.json) or --profile with one of the profiles of %s (%s)", e.cfg.Path, strings.Join(e.cfg.ProfileNames(), ", "))
	}
	return fmt.Sprintf("no backend for profile %q: pass --backend or set backend in [profiles.%s] of %s", name, name, e.cfg.Path)
}

// Example is a profile to create when there is no file.
func (e *noBackendError) Example() string {
	if !e.cfg.Missing {
		return ""
	}
	return config.ExampleProfile(e.r.Name)
}

// ExitCode makes it a usage error.
func (e *noBackendError) ExitCode() int { return 2 }

// wire builds the profile's backend and, if configured, its issuer.
func (a *app) wire(ctx context.Context, name string) (*wired, error) {
	return a.wireFor(ctx, name, true)
}

// wireToServe is wire for a command that serves the stored pair (get and
// the faces): an issuer that is configured correctly but cannot be opened
// now (a plugin that does not start, or whose binary no longer matches its
// pin) does not stop a usable pair from being served; it is warned about,
// and a refresh fails with its error, spending nothing.
func (a *app) wireToServe(ctx context.Context, name string) (*wired, error) {
	w, err := a.wireParts(ctx, name, true)
	var ue *issuerOpenError
	if !errors.As(err, &ue) {
		return w, err
	}
	a.logger.Warn("credhelper: the issuer cannot be opened; serving the stored pair while it is usable, without refreshing it",
		slog.String("profile", ue.w.name), slog.String("error", message(ue.err)))
	ue.w.issuer, ue.w.issuerErr = nil, ue.err
	return ue.w, nil
}

// issuerStartError is an issuer set up correctly that could not be
// started now (a plugin process that does not start, or whose binary no
// longer matches its pin); a mistake in the settings is not one.
type issuerStartError struct{ err error }

func (e *issuerStartError) Error() string { return e.err.Error() }
func (e *issuerStartError) Unwrap() error { return e.err }

// issuerOpenError is an issuer that is set up correctly but failed to
// open; w is the wiring without it.
type issuerOpenError struct {
	w   *wired
	err error
}

func (e *issuerOpenError) Error() string { return e.err.Error() }
func (e *issuerOpenError) Unwrap() error { return e.err }

// wireFor is wire, skipping the backend when withBackend is false (a
// pair printed by generate --out needs only the issuer).
func (a *app) wireFor(ctx context.Context, name string, withBackend bool) (*wired, error) {
	w, err := a.wireParts(ctx, name, withBackend)
	if ue := (*issuerOpenError)(nil); errors.As(err, &ue) {
		ue.w.Close()
		return nil, ue.err
	}
	return w, err
}

// wireParts is wireFor, except that an issuer that failed to open comes
// back as an *issuerOpenError holding the rest of the wiring, open.
func (a *app) wireParts(ctx context.Context, name string, withBackend bool) (*wired, error) {
	r, cfg, err := a.resolve(name)
	var nb *noBackendError
	if err != nil && !(errors.As(err, &nb) && !withBackend) {
		return nil, err
	}
	w := &wired{name: r.Name, profile: &r.Profile, resolved: r, cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	if withBackend {
		s, _ := parseSpec(backendScheme, w.profile.Backend) // checked by resolve
		if w.backend, w.key, err = a.sharedBackend(ctx, s, w); err != nil {
			return nil, err
		}
	}
	if w.profile.Issuer != "" {
		s, _ := parseSpec(issuerScheme, w.profile.Issuer)
		if w.issuer, err = a.sharedIssuer(ctx, s, w); err != nil {
			if !errors.As(err, new(*issuerStartError)) {
				return nil, err
			}
			ok = true // the backend stays open for a caller that serves without the issuer
			return nil, &issuerOpenError{w, err}
		}
	}
	ok = true
	return w, nil
}

// openPlugin starts the plugin [plugins.name] that profile w's setting
// ("backend" or "issuer") names.
func (a *app) openPlugin(name, setting string, w *wired) (*plugins.Plugin, error) {
	def, ok := w.cfg.Plugins[name]
	if !ok {
		return nil, usagef("%s names plugin %q, which the config file does not define: add [plugins.%s] with path and sha256", w.resolved.Describe(setting), name, name)
	}
	if err := w.cfg.PluginProblems(w.name, name); err != nil {
		return nil, usageError{err}
	}
	path := expandHome(def.Path)
	if path == "" {
		path = filepath.Join(config.PluginDir(), "credhelper-plugin-"+name)
	}
	pl, err := plugins.Open(plugins.Spec{Name: name, Path: path, Args: def.Args, SHA256: def.SHA256, Env: def.Env},
		func(o *plugins.Options) { o.Logger = a.logger })
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, pl.Close)
	return pl, nil
}

// clientSecret reads the OAuth2 client secret from the variable or file the
// profile names; secrets are never flags (they would show in ps).
func clientSecret(r *config.Resolved) (string, error) {
	o := r.Profile.OAuth2
	switch {
	case o.ClientSecretEnv != "":
		v, ok := os.LookupEnv(o.ClientSecretEnv)
		if !ok {
			return "", usagef("$%s, named by %s, is not set: export the client secret in it", o.ClientSecretEnv, r.Describe("oauth2.client_secret_env"))
		}
		return cleanSecret(v, "$"+o.ClientSecretEnv)
	case o.ClientSecretFile != "":
		b, err := readSecretFile(expandHome(o.ClientSecretFile))
		if err != nil {
			return "", fmt.Errorf("%s: %w", r.Describe("oauth2.client_secret_file"), err)
		}
		return cleanSecret(string(b), r.Describe("oauth2.client_secret_file"))
	}
	return "", nil
}

// readSecretFile reads a file holding one secret through the local-state
// trust rule (nobody but the user and root can have written it or the
// directories above it; a FIFO or device is refused without blocking),
// refusing one larger than any secret (64 KiB) without reading it. It may
// be group-readable, as Vault Agent's sinks are.
func readSecretFile(path string) ([]byte, error) {
	return fsutil.ReadFile(path, fsutil.Rule{What: "secret file", MaxSize: 64 << 10})
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
	// Whoever can replace the CA file can read the issuer's traffic.
	pem, err := fsutil.ReadFile(expandHome(path), fsutil.Rule{What: "CA file", MaxSize: 1 << 20})
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
		o.JournalDir = expandHome(p.JournalDir)
		o.MinValidity = p.MinValidity.Duration
		o.RefreshFloor = p.RefreshFloor.Duration
		o.RefreshFraction = p.RefreshFraction
		o.LeaseDuration = p.LeaseDuration.Duration
		o.IssuerTimeout = p.IssuerTimeout.Duration
		o.ClockSkew = p.ClockSkew.Duration
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
	a.used.Store(name, struct{}{})
	if p, ok, err := a.viaAgent(ctx, name); ok {
		return p, err
	}
	return a.direct(ctx, name, nil)
}

// direct resolves the profile through its own engine. When force is set
// and says so of the stored pair, it then refreshes once (a profile
// without an issuer, or whose pair never expires, is not refreshed).
func (a *app) direct(ctx context.Context, name string, force func(stored provider.Pair) bool) (provider.Pair, error) {
	w, err := a.wireToServe(ctx, name)
	if err != nil {
		return provider.Pair{}, err
	}
	defer w.Close()
	// A one-shot process refreshes as soon as the pair is in its window:
	// it holds nothing between calls, so spreading its refresh point over
	// the window (as long-lived holders do against herds) would only make
	// each call's outcome a matter of chance.
	// A usable pair is served at once; its due refresh goes to a detached
	// refresher (refresher.go), so nobody waits for an issuer meanwhile.
	e, err := a.engine(w, func(o *refresh.Options) { o.Jitter, o.DeferRefresh = 0, canDetach && force == nil })
	if err != nil {
		return provider.Pair{}, err
	}
	p, err := e.Credential(ctx)
	if w.issuerErr != nil && (errors.Is(err, refresh.ErrNoIssuer) || errors.Is(err, provider.ErrExpired)) {
		// Nothing was claimed or written: say why there is no refresh.
		err = fmt.Errorf("the pair under %s is no longer usable, and its issuer cannot be opened to refresh it (fix the issuer, or store a new pair with 'credhelper put'): %w", w.key, w.issuerErr)
	}
	if err == nil && force != nil && w.issuer != nil && !p.Never() && force(p) {
		p, err = e.Refresh(ctx)
	}
	if err == nil && canDetach && force == nil && e.Due() && !a.startRefresher(w) {
		// No refresher could be started: refresh here, as before.
		_, _ = e.RefreshIfDue(ctx)
	}
	// Closing waits for a refresh started in the background so that a
	// short-lived process never abandons a claimed refresh; after an
	// interrupt it waits only for an issuer call that may have been
	// delivered.
	if cerr := a.closeEngine(e, w); err == nil && cerr != nil {
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
