// Command testplugin is the plugin the plugins tests drive: an in-memory
// backend and a fake issuer whose behaviour the key or refresh token
// selects, so tests can block a call, read the deadline the plugin sees,
// have it return any error kind, or answer with "big:N" bytes; flags
// choose what it declares (-read-only, -issuer-caps) or make it a plugin
// of the protocol's first release (-old). Not for use outside tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
)

// errorFor builds the error "err:KIND,KIND,...[,TRANSIENT][,LONG]" asks for.
func errorFor(spec string) error {
	var kinds []provider.Kind
	transient := false
	msg := "testplugin: requested failure " + spec
	for _, name := range strings.Split(spec, ",") {
		switch name {
		case "TRANSIENT":
			transient = true
		case "LONG":
			msg += strings.Repeat(" long\nline", 10000)
		case "":
		default:
			// The kinds travel as upper-case names, as on the wire.
			kinds = append(kinds, provider.Kind(strings.ToLower(name)))
		}
	}
	err := error(provider.NewError(msg, nil, kinds...))
	if transient {
		err = provider.Transient(err)
	}
	return err
}

type backend struct {
	log *slog.Logger

	mu         sync.Mutex
	data       map[string]provider.Entry // guarded by mu
	n          int                       // guarded by mu
	lastCancel string                    // guarded by mu
	// Calls this process answered, by method, that a test reads with
	// Load("calls:METHOD").
	calls map[string]int // guarded by mu
}

// count records a call of method.
func (b *backend) count(method string) {
	b.mu.Lock()
	b.calls[method]++
	b.mu.Unlock()
}

func (b *backend) block(ctx context.Context) error {
	<-ctx.Done()
	b.mu.Lock()
	b.lastCancel = ctx.Err().Error()
	b.mu.Unlock()
	return ctx.Err()
}

func (b *backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	entry := func(s string) (provider.Entry, error) {
		return provider.Entry{Value: []byte(s), Version: "v"}, nil
	}
	switch {
	case key == "pid":
		return entry(strconv.Itoa(os.Getpid()))
	case key == "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return entry("none")
		}
		return entry(strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	case key == "block":
		return provider.Entry{}, b.block(ctx)
	case key == "lastcancel":
		b.mu.Lock()
		defer b.mu.Unlock()
		return entry(b.lastCancel)
	case strings.HasPrefix(key, "calls:"):
		b.mu.Lock()
		defer b.mu.Unlock()
		return entry(strconv.Itoa(b.calls[strings.TrimPrefix(key, "calls:")]))
	case strings.HasPrefix(key, "err:"):
		return provider.Entry{}, errorFor(strings.TrimPrefix(key, "err:"))
	case strings.HasPrefix(key, "big:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(key, "big:"))
		return provider.Entry{Value: make([]byte, n), Version: "v"}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.data[key]
	if !ok {
		return provider.Entry{}, fmt.Errorf("testplugin: %q: %w", key, provider.ErrNotFound)
	}
	return e, nil
}

func (b *backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	if key == "block" {
		return "", b.block(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.data[key].Version != expected {
		return "", fmt.Errorf("testplugin: %q: %w", key, provider.ErrConflict)
	}
	b.n++
	v := provider.Version(fmt.Sprintf("v%d", b.n))
	b.data[key] = provider.Entry{Value: append([]byte(nil), value...), Version: v}
	return v, nil
}

// readOnlyBackend is the backend declaring itself read-only (-read-only).
type readOnlyBackend struct{ *backend }

// ReadOnly counts how often the host asked: once per process.
func (b readOnlyBackend) ReadOnly() bool {
	b.count("ReadOnly")
	return true
}

func (b readOnlyBackend) CompareAndSwap(context.Context, string, provider.Version, []byte) (provider.Version, error) {
	return "", fmt.Errorf("testplugin: read-only: %w", provider.ErrReadOnly)
}

// issuer is the fake issuer: Refresh appends "+" to both tokens and moves
// every time of the pair it was given, so tests see each field cross the
// boundary both ways.
type issuer struct {
	b      *backend
	policy provider.RefreshPolicy
}

func (i *issuer) Refresh(ctx context.Context, p provider.Pair) (provider.Pair, error) {
	i.b.count("Refresh")
	switch {
	case p.RefreshToken == "block":
		return provider.Pair{}, i.b.block(ctx)
	case strings.HasPrefix(p.RefreshToken, "err:"):
		return provider.Pair{}, errorFor(strings.TrimPrefix(p.RefreshToken, "err:"))
	}
	next := p
	next.AuthToken = p.AuthToken + "+"
	next.RefreshToken = p.RefreshToken + "+"
	if !p.Never() {
		next.ValidUntil = p.ValidUntil.Add(time.Hour)
	}
	if !p.RefreshValidUntil.IsZero() {
		next.RefreshValidUntil = p.RefreshValidUntil.Add(24 * time.Hour)
	}
	if !p.IssuedAt.IsZero() {
		next.IssuedAt = p.IssuedAt.Add(time.Hour)
	}
	return next, nil
}

func (i *issuer) RefreshPolicy() provider.RefreshPolicy { return i.policy }

// generator adds Generate (-issuer-caps generate).
type generator struct{ *issuer }

func (generator) Generate(_ context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	p := provider.Pair{AuthToken: "auth-" + req.Description, RefreshToken: "refresh-" + req.Description, Endpoint: strings.Join(req.Scope.Caches, ",")}
	if !req.Never {
		p.ValidUntil = time.Unix(1_000_000_000, 0).Add(req.Lifetime)
	}
	return p, nil
}

// introspector adds RefreshTokenActive (-issuer-caps introspect): a
// refresh token is spent when it starts with "spent".
type introspector struct{ *issuer }

func (n introspector) RefreshTokenActive(_ context.Context, p provider.Pair) (bool, error) {
	n.b.count("RefreshTokenActive")
	if strings.HasPrefix(p.RefreshToken, "err:") {
		return false, errorFor(strings.TrimPrefix(p.RefreshToken, "err:"))
	}
	return !strings.HasPrefix(p.RefreshToken, "spent"), nil
}

// issuerCaps reads -issuer-caps: a comma-separated list of generate,
// introspect, refresh-after-expiry and revokes, or @FILE to read that list
// from FILE when the process starts.
func issuerCaps(spec string) (map[string]bool, error) {
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		spec = strings.TrimSpace(string(data))
	}
	caps := map[string]bool{}
	for _, c := range strings.Split(spec, ",") {
		switch c {
		case "generate", "introspect", "refresh-after-expiry", "revokes":
			caps[c] = true
		case "":
		default:
			return nil, fmt.Errorf("testplugin: unknown issuer capability %q", c)
		}
	}
	return caps, nil
}

// newIssuer builds the issuer with the capabilities caps names.
func newIssuer(b *backend, caps map[string]bool) provider.Issuer {
	i := &issuer{b: b, policy: provider.RefreshPolicy{RefreshAfterExpiry: caps["refresh-after-expiry"], RejectionRevokesAuthToken: caps["revokes"]}}
	switch {
	case caps["generate"] && caps["introspect"]:
		return struct {
			generator
			introspector
			*issuer
		}{generator{i}, introspector{i}, i}
	case caps["generate"]:
		return generator{i}
	case caps["introspect"]:
		return introspector{i}
	}
	return i
}

func main() {
	stdoutBefore := flag.String("stdout-before", "", "print this to stdout before serving (a misbehaving plugin)")
	serve := flag.String("serve", "both", "what to serve: backend, issuer or both")
	readOnly := flag.Bool("read-only", false, "serve a read-only backend")
	capsSpec := flag.String("issuer-caps", "generate", "what the issuer implements: generate, introspect, refresh-after-expiry, revokes (comma-separated), or @FILE")
	old := flag.Bool("old", false, "serve only the issuer, as a plugin built before refresh_valid_until, issued_at, the policy and RefreshTokenActive existed would; it declares generate, and introspect if -issuer-caps names it")
	flag.Parse()
	if *stdoutBefore != "" {
		fmt.Println(*stdoutBefore)
	}
	log := plugins.NewLogger(os.Stderr, slog.LevelDebug)
	log.Info("testplugin starting", "pid", os.Getpid())
	caps, err := issuerCaps(*capsSpec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *old {
		serveOld(caps["introspect"])
		return
	}
	b := &backend{log: log, data: map[string]provider.Entry{}, calls: map[string]int{}}
	var cfg plugins.ServeConfig
	if *serve != "issuer" {
		cfg.Backend = b
		if *readOnly {
			cfg.Backend = readOnlyBackend{b}
		}
	}
	if *serve != "backend" {
		cfg.Issuer = newIssuer(b, caps)
	}
	plugins.Serve(cfg)
}
