package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// inMemory is what the cache wraps instead of the protocol for a
// read-only backend under Options.UnsafeRefreshInMemory: a chain of pairs
// kept in this process's memory alone, in front of the stored pair. There
// is no shared store to claim, journal or commit in, so of the protocol
// it keeps step 2 (load the stored pair and decide, starting from the
// chain's head when that is newer) and step 5 (call the issuer once), and
// it publishes through the same seam.
type inMemory struct {
	pr *protocol // its backend, issuer, options and seam

	mu     sync.Mutex     // guards the fields below
	head   *provider.Pair // the chain's newest pair; nil: the stored one
	warned bool           // the spent stored token was warned about
}

// refresh refreshes the chain's head, or serves it if it is not due.
func (m *inMemory) refresh(ctx context.Context, forceGen *uint64) (provider.Pair, error) {
	pr := m.pr
	_, rec, err := pr.load(ctx)
	if err != nil {
		return provider.Pair{}, err
	}
	m.mu.Lock()
	base := rec.Pair
	if m.head != nil && m.head.Generation >= base.Generation {
		base = *m.head
	}
	m.mu.Unlock()
	now := pr.opts.Clock.Now()
	forced := forceGen != nil && base.Generation <= *forceGen
	if base.Never() || (!forced && now.Before(pr.cache.refreshAt(base))) {
		pr.adopt(base)
		return base, nil
	}
	if err := pr.refreshable(base, now); err != nil {
		return provider.Pair{}, err
	}
	if err := pr.checkLifetime(base); err != nil {
		return provider.Pair{}, err
	}
	pr.event(EventRefreshStarted, slog.Uint64("generation", base.Generation), slog.Bool("in_memory", true))
	next, err := pr.callIssuer(ctx, base)
	if err != nil {
		if errors.Is(err, provider.ErrRefreshRejected) {
			pr.event(EventLineageBroken, slog.Uint64("generation", base.Generation))
			if pr.policy.RejectionRevokesAuthToken {
				pr.cache.unserve(base)
			}
			return provider.Pair{}, fmt.Errorf("%w: %w", pr.brokenError(base.Generation, "the issuer rejected the refresh token: spent or revoked"), err)
		}
		return provider.Pair{}, fmt.Errorf("refresh: refresh %s: %w", pr.key, err)
	}
	next.Generation = base.Generation + 1
	if next.IssuedAt.IsZero() {
		next.IssuedAt = now.Truncate(time.Second)
	}
	m.mu.Lock()
	m.head = &next
	warn := !m.warned
	m.warned = true
	m.mu.Unlock()
	if warn {
		pr.opts.Logger.Warn("credhelper refresh: the backend is read-only; the refreshed pair lives in this process's memory only and the stored refresh token is now spent: any other process reading the same source will present it again, which an issuer with reuse detection answers by revoking the whole family",
			slog.String("key", pr.key))
	}
	pr.event(EventCommitted, slog.Uint64("generation", next.Generation), slog.Bool("in_memory", true))
	pr.cache.serveRefreshed(next)
	return next, nil
}
