// Command testplugin is the plugin the plugins tests drive: an in-memory
// backend and a fake issuer whose behaviour the key or refresh token
// selects, so tests can block a call, read the deadline the plugin sees,
// have it return any error kind, or answer with "big:N" bytes. Not for use outside tests.
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

type issuer struct{ b *backend }

func (i *issuer) Refresh(ctx context.Context, p provider.Pair) (provider.Pair, error) {
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
	return next, nil
}

func (i *issuer) Generate(_ context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	p := provider.Pair{AuthToken: "auth-" + req.Description, RefreshToken: "refresh-" + req.Description, Endpoint: strings.Join(req.Scope.Caches, ",")}
	if !req.Never {
		p.ValidUntil = time.Unix(1_000_000_000, 0).Add(req.Lifetime)
	}
	return p, nil
}

func main() {
	stdoutBefore := flag.String("stdout-before", "", "print this to stdout before serving (a misbehaving plugin)")
	serve := flag.String("serve", "both", "what to serve: backend, issuer or both")
	flag.Parse()
	if *stdoutBefore != "" {
		fmt.Println(*stdoutBefore)
	}
	log := plugins.NewLogger(os.Stderr, slog.LevelDebug)
	log.Info("testplugin starting", "pid", os.Getpid())
	b := &backend{log: log, data: map[string]provider.Entry{}}
	var cfg plugins.ServeConfig
	if *serve != "issuer" {
		cfg.Backend = b
	}
	if *serve != "backend" {
		cfg.Issuer = &issuer{b: b}
	}
	plugins.Serve(cfg)
}
