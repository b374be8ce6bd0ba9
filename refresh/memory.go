package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// refreshInMemory keeps a read-only backend's chain alive in this process
// alone, under Options.UnsafeRefreshInMemory.
func (e *Engine) refreshInMemory(ctx context.Context, rec *provider.Record, forceGen *uint64) (provider.Pair, error) {
	e.mu.Lock()
	base := rec.Pair
	if e.memPair != nil && e.memPair.Generation >= base.Generation {
		base = *e.memPair
	}
	e.mu.Unlock()
	c := e.cachedFor(base)
	now := e.opts.Clock.Now()
	forced := forceGen != nil && base.Generation <= *forceGen
	if base.Never() || (!forced && now.Before(c.refreshAt)) {
		e.adopt(c)
		return base, nil
	}
	if err := e.refreshable(base, now); err != nil {
		return provider.Pair{}, err
	}
	if err := e.checkLifetime(base); err != nil {
		return provider.Pair{}, err
	}
	e.event(EventRefreshStarted, slog.Uint64("generation", base.Generation), slog.Bool("in_memory", true))
	next, err := e.callIssuer(ctx, base)
	if err != nil {
		if errors.Is(err, provider.ErrRefreshRejected) {
			e.event(EventLineageBroken, slog.Uint64("generation", base.Generation))
			if e.policy.RejectionRevokesAuthToken {
				e.unpublish(base)
			}
			return provider.Pair{}, fmt.Errorf("%w: %w", e.brokenError(base.Generation, "the issuer rejected the refresh token: spent or revoked"), err)
		}
		return provider.Pair{}, fmt.Errorf("refresh: refresh %s: %w", e.key, err)
	}
	next.Generation = base.Generation + 1
	if next.IssuedAt.IsZero() {
		next.IssuedAt = now.Truncate(time.Second)
	}
	e.mu.Lock()
	e.memPair = &next
	warn := !e.warnedRO
	e.warnedRO = true
	e.mu.Unlock()
	if warn {
		e.opts.Logger.Warn("credhelper refresh: the backend is read-only; the refreshed pair lives in this process's memory only and the stored refresh token is now spent: any other process reading the same source will present it again, which an issuer with reuse detection answers by revoking the whole family",
			slog.String("key", e.key))
	}
	e.event(EventCommitted, slog.Uint64("generation", next.Generation), slog.Bool("in_memory", true))
	e.publish(e.schedule(next, true))
	return next, nil
}
