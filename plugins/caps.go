package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	pluginv1 "github.com/credhelper/credhelper/plugins/proto/credhelper/plugin/v1"
	"github.com/credhelper/credhelper/provider"
)

// ErrCapabilitiesChanged reports a call through a backend or issuer that
// was opened (Plugin.Backend, Plugin.Issuer) before its plugin process was
// restarted, when the new process declares other capabilities than the
// one it was opened with: the optional interfaces the value implements
// would no longer tell the truth. The call is not sent (the error is
// transient and wraps provider.ErrNotDelivered); calls succeed again once
// a process with the old capabilities runs, and a newly opened value
// matches the new ones.
var ErrCapabilitiesChanged = errors.New("plugin capabilities changed")

// backendCaps is what a plugin's backend declared. It is comparable, so a
// restarted process's answer can be checked against the one a value was
// opened with.
type backendCaps struct {
	readOnly   bool
	writeCheck bool
}

func backendCapsFrom(c *pluginv1.BackendCapabilities) backendCaps {
	return backendCaps{readOnly: c.GetReadOnly(), writeCheck: c.GetWriteCheck()}
}

func (c backendCaps) String() string {
	return describe(capFlag{c.readOnly, "read-only"}, capFlag{c.writeCheck, "write check"})
}

// issuerCaps is what a plugin's issuer declared, its refresh policy
// included.
type issuerCaps struct {
	generate   bool
	introspect bool
	policy     provider.RefreshPolicy
}

func issuerCapsFrom(c *pluginv1.IssuerCapabilities) issuerCaps {
	return issuerCaps{
		generate:   c.GetGenerate(),
		introspect: c.GetIntrospect(),
		policy: provider.RefreshPolicy{
			RefreshAfterExpiry:        c.GetRefreshAfterExpiry(),
			RejectionRevokesAuthToken: c.GetRejectionRevokesAuthToken(),
		},
	}
}

func (c issuerCaps) String() string {
	return describe(capFlag{c.generate, "generate"}, capFlag{c.introspect, "introspect"},
		capFlag{c.policy.RefreshAfterExpiry, "refresh after expiry"},
		capFlag{c.policy.RejectionRevokesAuthToken, "rejection revokes auth token"})
}

// capFlag is one capability and whether it is declared.
type capFlag struct {
	on   bool
	name string
}

// describe lists the declared capabilities, as "[a, b]", or "[none]".
func describe(flags ...capFlag) string {
	var names []string
	for _, f := range flags {
		if f.on {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "[none]"
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// answer is one plugin process's answer to a capability question, asked
// once. A failed question is asked again by the next caller.
type answer[T any] struct {
	mu    sync.Mutex
	v     T    // guarded by mu
	known bool // guarded by mu
}

// get returns the answer, asking it with ask if it is not known yet.
// Concurrent callers wait for one question.
func (a *answer[T]) get(ask func() (T, error)) (T, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.known {
		v, err := ask()
		if err != nil {
			return v, err
		}
		a.v, a.known = v, true
	}
	return a.v, nil
}

// backendCapabilities returns what pr's backend declared, asking the
// process once. It wraps provider.ErrUnsupported when the process serves
// no backend.
func (pr *proc) backendCapabilities(ctx context.Context) (backendCaps, error) {
	return pr.backendAnswer.get(func() (backendCaps, error) {
		ctx, cancel := context.WithTimeout(ctx, capabilitiesTimeout)
		defer cancel()
		c, err := pr.backend.c.Capabilities(ctx, &pluginv1.BackendCapabilitiesRequest{})
		if err != nil {
			return backendCaps{}, answerError(err)
		}
		return backendCapsFrom(c), nil
	})
}

// issuerCapabilities is backendCapabilities for the issuer.
func (pr *proc) issuerCapabilities(ctx context.Context) (issuerCaps, error) {
	return pr.issuerAnswer.get(func() (issuerCaps, error) {
		ctx, cancel := context.WithTimeout(ctx, capabilitiesTimeout)
		defer cancel()
		c, err := pr.issuer.c.Capabilities(ctx, &pluginv1.IssuerCapabilitiesRequest{})
		if err != nil {
			return issuerCaps{}, answerError(err)
		}
		return issuerCapsFrom(c), nil
	})
}

// bound is what the host-side values of one served part (the backend or
// the issuer) share: the plugin, the capabilities the part declared when
// the value was opened, and how to ask a process for them.
type bound[C comparable] struct {
	p    *Plugin
	part string // "backend" or "issuer", for errors
	caps C
	ask  func(*proc, context.Context) (C, error)
}

// openPart asks the running process (starting it if needed) what part
// declares. A plugin that serves no such part fails with an error
// wrapping provider.ErrUnsupported.
func openPart[C comparable](ctx context.Context, p *Plugin, part string, ask func(*proc, context.Context) (C, error)) (bound[C], error) {
	b := bound[C]{p: p, part: part, ask: ask}
	err := p.call(ctx, "Capabilities", "", func(pr *proc) error {
		var err error
		b.caps, err = ask(pr, ctx)
		return err
	})
	if errors.Is(err, provider.ErrUnsupported) {
		return b, fmt.Errorf("plugins: plugin %q serves no %s: %w", p.name, part, provider.ErrUnsupported)
	}
	return b, err
}

// call runs fn against the running process, after checking that the
// process declares the capabilities b was opened with (a question asked
// once per process, so only the first call after a restart makes it).
func (b *bound[C]) call(ctx context.Context, method, lostNote string, fn func(*proc) error) error {
	return b.p.call(ctx, method, lostNote, func(pr *proc) error {
		now, err := b.ask(pr, ctx)
		if err != nil {
			return err
		}
		if now != b.caps {
			return provider.Transient(fmt.Errorf("the plugin process (pid %d) was restarted and its %s now declares the capabilities %v, not %v as when it was opened; the call was not sent; open the plugin's %s again for a value that matches: %w: %w",
				pr.pid, b.part, now, b.caps, b.part, ErrCapabilitiesChanged, provider.ErrNotDelivered))
		}
		return fn(pr)
	})
}
