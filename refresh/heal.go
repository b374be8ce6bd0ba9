package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// maxHealBackoff caps the delay between failed bootstraps.
const maxHealBackoff = time.Hour

// heal restarts a lineage that cannot be continued (rec's generation is
// marked broken, or its refresh token expired) from Options.Bootstrap.
// Exactly one instance heals: it claims a lease of kind LeaseHeal on the
// generation, bootstraps once, journals the new pair and commits it as
// generation N+2 with a note of why; everyone else waits for it and
// adopts it. A failed bootstrap releases the claim and records a backoff
// in the record that every instance honours. It returns errRetry when
// the caller should load the record again (another instance's heal is in
// flight, or the claim was lost to a race).
func (pr *protocol) heal(ctx context.Context, entry provider.Entry, rec *provider.Record, reason string) (provider.Pair, error) {
	gen := rec.Pair.Generation
	now := pr.opts.Clock.Now()
	if b := rec.Broken; b != nil && b.Generation == gen && now.Before(b.HealRetryAfter) {
		return provider.Pair{}, fmt.Errorf("%w (re-bootstrap failed %d times; next attempt after %s)",
			pr.brokenError(gen, b.Reason), b.HealFailures, b.HealRetryAfter.UTC().Format(time.RFC3339))
	}
	if l := rec.Lease; l != nil && l.Holder != pr.opts.Holder && l.Generation == gen && now.Before(l.Expires.Add(pr.opts.ClockSkew)) {
		pr.event(EventLeaseWait, slog.String("lease_holder", l.Holder), slog.Uint64("generation", gen), slog.String("kind", string(l.Kind)))
		if err := pr.sleep(ctx, 200*time.Millisecond); err != nil {
			return provider.Pair{}, fmt.Errorf("refresh: %s is being healed by %s, which has not finished: %w", pr.key, l.Holder, provider.Transient(err))
		}
		return provider.Pair{}, errRetry
	}
	h, err := pr.claim(ctx, entry, rec, provider.LeaseHeal)
	if err != nil {
		if errors.Is(err, provider.ErrConflict) {
			return provider.Pair{}, errRetry
		}
		return provider.Pair{}, err
	}
	ctx, cancelCtx := detached(ctx)
	defer cancelCtx()
	pr.opts.Logger.Warn("credhelper refresh: lineage cannot be continued; re-bootstrapping",
		slog.String("key", pr.key), slog.Uint64("generation", gen), slog.String("reason", reason))
	bctx, cancel := context.WithTimeout(h.callCtx, pr.opts.IssuerTimeout)
	dl, _ := bctx.Deadline()
	pr.setIssuing(dl)
	pr.opts.Trace.issuing(pr.key, gen)
	p, err := pr.opts.Bootstrap.Bootstrap(bctx)
	cancel()
	if err != nil {
		pr.setIssuing(time.Time{})
	}
	if err == nil && p.AuthToken == "" {
		err = fmt.Errorf("the bootstrap returned no auth token: %w", provider.ErrInvalidRecord)
	}
	if err != nil {
		return pr.healFailed(ctx, rec, h.stop(), reason, err)
	}
	pr.opts.Trace.issued(pr.key, gen)
	// N+2, not N+1: a holder cut off after its issuer answered may have
	// served its own pair as N+1 from memory, and one generation must
	// never name two pairs.
	p.Generation = gen + 2
	next := rec.Clone()
	next.Pair = p
	next.Lease, next.Broken = nil, nil
	next.Healed = &provider.Healed{Generation: gen, Reason: reason, At: now}
	if err := pr.journalNext(rec, next, h, "the bootstrap returned an unusable pair"); err != nil {
		return provider.Pair{}, err
	}
	committed, err := servedIfDeferred(pr.commitPending(ctx))
	if err == nil && committed.Generation == p.Generation {
		pr.event(EventHealed, slog.Uint64("broken_generation", gen), slog.Uint64("generation", p.Generation), slog.String("reason", reason))
	}
	return committed, err
}

// healFailed releases the heal claim and records when the next attempt may
// start: HealBackoff doubled per consecutive failure, at most an hour.
func (pr *protocol) healFailed(ctx context.Context, rec *provider.Record, claimed provider.Version, reason string, cause error) (provider.Pair, error) {
	gen := rec.Pair.Generation
	b := provider.Broken{Generation: gen, Reason: reason}
	if rec.Broken != nil && rec.Broken.Generation == gen {
		b = *rec.Broken
	}
	b.HealFailures++
	d := pr.opts.HealBackoff << min(b.HealFailures-1, 20)
	d = min(d, maxHealBackoff)
	b.HealRetryAfter = pr.opts.Clock.Now().Add(d)
	mark := rec.Clone()
	mark.Lease, mark.Broken = nil, &b
	if _, err := pr.swap(ctx, claimed, mark); err != nil {
		pr.opts.Logger.Warn("credhelper refresh: could not record the failed re-bootstrap", slog.String("key", pr.key), slog.String("error", err.Error()))
	}
	pr.event(EventHealFailed, slog.Uint64("generation", gen), slog.Uint64("failures", b.HealFailures),
		slog.Time("retry_after", b.HealRetryAfter), slog.String("error", cause.Error()))
	return provider.Pair{}, fmt.Errorf("%w: re-bootstrap failed (attempt %d; next after %s): %w",
		pr.brokenError(gen, reason), b.HealFailures, b.HealRetryAfter.UTC().Format(time.RFC3339), cause)
}
