package cli

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/issuers/momento"
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
func clientKey(s spec, w *wired) string {
	q := *w.profile // a copy: the fields below are cleared
	q.Backend, q.Issuer, q.Endpoint, q.JournalDir = "", "", "", ""
	q.MinValidity, q.RefreshFloor, q.LeaseDuration, q.IssuerTimeout, q.ClockSkew = config.Duration{}, config.Duration{}, config.Duration{}, config.Duration{}, config.Duration{}
	q.RefreshFraction, q.UnsafeRefreshInMemory, q.Bootstrap = 0, false, config.Bootstrap{}
	q.Docker, q.Git, q.Env, q.Sink = config.Docker{}, config.Git{}, config.Env{}, nil
	q.GoAuth, q.Cargo, q.Kubelet, q.Bazel, q.Terraform = config.GoAuth{}, config.Cargo{}, config.Kubelet{}, config.Bazel{}, config.Terraform{}
	k := struct {
		Kind    schemeKind
		Scheme  string
		Addr    string
		Plugin  *config.Plugin
		Profile config.Profile
	}{Kind: s.scheme.kind, Scheme: s.scheme.name, Profile: q}
	if s.scheme.kind == issuerScheme {
		k.Addr = s.rest
	}
	if s.scheme.name == "plugin" {
		name, _, _ := strings.Cut(s.rest, ":")
		k.Addr = name
		if w.cfg != nil {
			def := w.cfg.Plugins[name]
			k.Plugin = &def
		}
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// backendKey is the key a backend spec names: what follows the scheme,
// less the plugin name for plugins, with ~/ expanded for files.
func backendKey(s spec) string {
	switch s.scheme.name {
	case "file":
		return expandHome(s.rest)
	case "plugin":
		_, key, _ := strings.Cut(s.rest, ":")
		return key
	}
	return s.rest
}

// sharedBackend opens the profile's backend, or reuses the agent's open
// one with the same settings.
func (a *app) sharedBackend(ctx context.Context, s spec, w *wired) (provider.Backend, string, error) {
	if a.clients == nil {
		return s.scheme.openBackend(ctx, a, s, w)
	}
	sc, err := a.clients.get(clientKey(s, w), w, func(own *wired) (*sharedClient, error) {
		b, _, err := s.scheme.openBackend(ctx, a, s, own)
		return &sharedClient{backend: b}, err
	})
	if err != nil {
		return nil, "", err
	}
	return sc.backend, backendKey(s), nil
}

// sharedIssuer is sharedBackend for issuers.
func (a *app) sharedIssuer(ctx context.Context, s spec, w *wired) (provider.Issuer, error) {
	if a.clients == nil {
		return s.scheme.openIssuer(ctx, a, s, w)
	}
	sc, err := a.clients.get(clientKey(s, w), w, func(own *wired) (*sharedClient, error) {
		i, err := s.scheme.openIssuer(ctx, a, s, own)
		return &sharedClient{issuer: i}, err
	})
	if err != nil {
		return nil, err
	}
	return sc.issuer, nil
}

// momentoIssuer opens a momento (or dev) issuer with optFns; in the agent
// its connection is kept for a round of refreshes to share.
func (a *app) momentoIssuer(w *wired, optFns ...func(*momento.Options)) (provider.Issuer, error) {
	if a.clients != nil {
		optFns = append(optFns, func(o *momento.Options) { o.ShareIdle = agentConnIdle })
	}
	i, err := momento.New(optFns...)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, i.Close) // its kept connections
	return i, nil
}

// get returns the entry for key, opening it if needed, and gives w a
// closer that releases it.
func (c *clientCache) get(key string, w *wired, open func(*wired) (*sharedClient, error)) (*sharedClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.entries[key]
	if sc == nil {
		own := &wired{name: w.name, profile: w.profile, resolved: w.resolved, cfg: w.cfg}
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
