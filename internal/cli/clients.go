package cli

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/provider"
)

// clientCache shares backends and issuers between the agent's profiles:
// profiles whose backend (or issuer) has the same scheme and settings use
// one client, with one connection pool, one AWS configuration, one Vault
// token renewer or one plugin process, instead of one each. Entries are
// counted and closed when the last profile using them closes. Backends and
// issuers take the key per call, so one serves any number of keys.
type clientCache struct {
	mu      sync.Mutex // guards entries
	entries map[string]*sharedClient
}

type sharedClient struct {
	key     string // the one copy of its key, which each closer refers to
	backend provider.Backend
	issuer  provider.Issuer
	closers []func() error
	refs    int
}

// agentConnIdle is how long the agent keeps an idle issuer connection:
// long enough for a round of refreshes to share it, short enough that a
// refresh an hour later dials afresh.
const agentConnIdle = 30 * time.Second

// shareClients makes wire share clients from now on (the agent does).
func (a *app) shareClients() {
	if a.clients == nil {
		a.clients = &clientCache{entries: map[string]*sharedClient{}}
	}
}

// clientKey is what makes two clients interchangeable: the scheme, the
// issuer's address (a backend's key is per call, so it does not count), the
// plugin's definition, and every profile setting except those that belong
// to one credential or to the engine, the faces or the sinks. A setting
// added to the profile later therefore keeps clients apart until it is
// listed here: the safe way to be wrong.
func clientKey(kind string, s config.Spec, p config.Profile, plugins map[string]config.Plugin) string {
	q := p
	q.Backend, q.Issuer, q.Endpoint, q.JournalDir = "", "", "", ""
	q.MinValidity, q.RefreshFloor, q.LeaseDuration, q.IssuerTimeout, q.ClockSkew = config.Duration{}, config.Duration{}, config.Duration{}, config.Duration{}, config.Duration{}
	q.RefreshFraction = 0
	q.Docker, q.Git, q.Env, q.Sink = config.Docker{}, config.Git{}, config.Env{}, nil
	k := struct {
		Kind, Scheme, Addr string
		Plugin             *config.Plugin
		Profile            config.Profile
	}{Kind: kind, Scheme: s.Scheme, Profile: q}
	if kind == "issuer" {
		k.Addr = s.Rest
	}
	if s.Scheme == "plugin" {
		name, _, _ := strings.Cut(s.Rest, ":")
		def := plugins[name]
		k.Addr, k.Plugin = name, &def
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// backendKey is the key a backend spec names: what follows the scheme,
// less the plugin name for plugins, with ~/ expanded for files.
func backendKey(s config.Spec) string {
	switch s.Scheme {
	case "file":
		return expandHome(s.Rest)
	case "plugin":
		_, key, _ := strings.Cut(s.Rest, ":")
		return key
	}
	return s.Rest
}

// sharedBackend opens the profile's backend, or reuses the agent's open
// one with the same settings.
func (a *app) sharedBackend(ctx context.Context, s config.Spec, p config.Profile, cfg *config.File, w *wired) (provider.Backend, string, error) {
	if a.clients == nil {
		return a.openBackend(ctx, s, p, cfg, w)
	}
	sc, err := a.clients.get(clientKey("backend", s, p, cfg.Plugins), w, func(own *wired) (*sharedClient, error) {
		b, _, err := a.openBackend(ctx, s, p, cfg, own)
		return &sharedClient{backend: b}, err
	})
	if err != nil {
		return nil, "", err
	}
	return sc.backend, backendKey(s), nil
}

// sharedIssuer is sharedBackend for issuers.
func (a *app) sharedIssuer(s config.Spec, p config.Profile, cfg *config.File, w *wired) (provider.Issuer, error) {
	if a.clients == nil {
		return a.openIssuer(s, p, cfg, w)
	}
	sc, err := a.clients.get(clientKey("issuer", s, p, cfg.Plugins), w, func(own *wired) (*sharedClient, error) {
		i, err := a.openIssuer(s, p, cfg, own)
		return &sharedClient{issuer: i}, err
	})
	if err != nil {
		return nil, err
	}
	return sc.issuer, nil
}

// get returns the entry for key, opening it if needed, and gives w a
// closer that releases it.
func (c *clientCache) get(key string, w *wired, open func(*wired) (*sharedClient, error)) (*sharedClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.entries[key]
	if sc == nil {
		own := &wired{}
		var err error
		if sc, err = open(own); err != nil {
			own.Close()
			return nil, err
		}
		sc.closers, sc.key = own.closers, key
		c.entries[key] = sc
	}
	sc.refs++
	w.closers = append(w.closers, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sc.refs--; sc.refs == 0 {
			delete(c.entries, sc.key)
			(&wired{closers: sc.closers}).Close()
		}
		return nil
	})
	return sc, nil
}
