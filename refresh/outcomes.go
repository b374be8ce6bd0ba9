package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// The outcomes of the protocol other than a new pair: why a pair cannot be
// refreshed (expired, read-only, no issuer, no usable lifetime), and what a
// broken lineage means for the callers of each issuer.

// canStore reports whether this instance may write the record.
func (pr *protocol) canStore() bool { return !pr.readOnly }

// refreshable reports why pair can no longer be refreshed, if it cannot:
// its refresh token is known to have expired, or the issuer needs a valid
// auth token and it has expired.
func (pr *protocol) refreshable(pair provider.Pair, now time.Time) error {
	switch {
	case !pair.RefreshValidUntil.IsZero() && !now.Before(pair.RefreshValidUntil):
		return &ExpiredError{Key: pr.key, Generation: pair.Generation, Token: "refresh token", At: pair.RefreshValidUntil}
	case !pr.policy.RefreshAfterExpiry && !now.Before(pair.ValidUntil):
		return &ExpiredError{Key: pr.key, Generation: pair.Generation, Token: "auth token", At: pair.ValidUntil}
	}
	return nil
}

// ExpiredError reports a lineage that can no longer be continued because a
// token it needs has expired: the refresh token, or the auth token of an
// issuer whose refresh authenticates with it. Nothing was presented.
type ExpiredError struct {
	Key        string
	Generation uint64
	Token      string // "refresh token" or "auth token"
	At         time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("refresh: the %s of the pair under %s (generation %d) expired at %s, so the pair can no longer be refreshed",
		e.Token, e.Key, e.Generation, e.At.UTC().Format(time.RFC3339))
}

// Unwrap reports both kinds: the credential expired, and its lineage cannot
// be continued without a new first pair.
func (e *ExpiredError) Unwrap() []error {
	return []error{provider.ErrExpired, provider.ErrLineageBroken}
}

// checkLifetime reports a pair that lives no longer than a caller's
// minimum validity, so that no refresh could ever yield a usable one.
func (pr *protocol) checkLifetime(p provider.Pair) error {
	if lt, ok := p.Lifetime(); ok && lt <= pr.opts.MinValidity+slowSlack+CoarseSlack {
		return &LifetimeError{Key: pr.key, Lifetime: lt, MinValidity: pr.opts.MinValidity}
	}
	return nil
}

// LifetimeError reports that the pairs of a credential live no longer than
// the minimum validity the engine must guarantee its callers (plus its
// margin), so that even a freshly refreshed pair could not be handed out.
// The engine returns it instead of spending a refresh token.
type LifetimeError struct {
	Key         string
	Lifetime    time.Duration // the pair's lifetime
	MinValidity time.Duration // Options.MinValidity
}

func (e *LifetimeError) Error() string {
	return fmt.Sprintf("refresh: pairs under %s live %v, no longer than the minimum validity of %v (plus %v of margin) that callers are guaranteed, so no refresh can yield a usable pair",
		e.Key, e.Lifetime, e.MinValidity, slowSlack+CoarseSlack)
}

// Unwrap reports the kind: no usable pair can be had.
func (e *LifetimeError) Unwrap() error { return provider.ErrExpired }

// ReadOnlyError reports a pair due for refresh whose backend cannot store
// a refreshed pair. The engine never spends a refresh token it cannot
// store: every other reader of the same source would present it again.
type ReadOnlyError struct {
	Key        string
	Generation uint64
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("refresh: the pair under %s (generation %d) is due for refresh, but its backend is read-only: a refreshed pair could not be stored, and every other reader of it would present the spent refresh token again",
		e.Key, e.Generation)
}

// Unwrap reports the kind.
func (e *ReadOnlyError) Unwrap() error { return provider.ErrReadOnly }

// ErrNoIssuer reports a pair due for refresh by an engine that has no
// issuer: provider.ErrNoIssuer, which wraps provider.ErrUnsupported and
// crosses the agent and plugin boundaries as its own kind.
var ErrNoIssuer = provider.ErrNoIssuer

// errNoIssuer explains a due refresh without an issuer.
func (pr *protocol) errNoIssuer(p provider.Pair) error {
	return fmt.Errorf("refresh: the pair under %s (generation %d) is due for refresh: %w", pr.key, p.Generation, ErrNoIssuer)
}

// servedBroken handles a record whose lineage is marked broken at its
// current generation: the pair is served while it is usable if the issuer
// leaves its auth token valid (Momento), and never if the issuer revoked
// it with the family (OAuth2 reuse detection).
func (pr *protocol) servedBroken(rec *provider.Record, forced bool) (provider.Pair, error) {
	err := pr.servingBroken(rec)
	if err == nil && forced {
		err = pr.brokenError(rec.Pair.Generation, rec.Broken.Reason)
	}
	if err != nil {
		return provider.Pair{}, err
	}
	pr.cache.serveUnrefreshable(rec.Pair)
	return rec.Pair, nil
}

// servingBroken returns the error a caller gets for a broken lineage, or
// nil if its pair may still be served.
func (pr *protocol) servingBroken(rec *provider.Record) error {
	pair := rec.Pair
	if pr.policy.RejectionRevokesAuthToken || !pair.ValidFor(pr.opts.Clock.Now(), pr.opts.MinValidity+slowSlack) {
		pr.cache.unserve(pair)
		return pr.brokenError(pair.Generation, rec.Broken.Reason)
	}
	if pr.cache.firstWarning() {
		pr.opts.Logger.Warn("credhelper refresh: lineage broken; serving the current pair until it has less than the minimum validity left",
			slog.String("key", pr.key), slog.Uint64("generation", pair.Generation), slog.String("reason", rec.Broken.Reason))
	}
	return nil
}

// rejected handles an issuer's refusal: adopt a newer generation if one was
// committed meanwhile, else mark the lineage broken so that no instance
// presents the spent token again (and heal it, if a bootstrap is set).
func (pr *protocol) rejected(ctx context.Context, rec *provider.Record, claimed provider.Version, cause error) (provider.Pair, error) {
	gen := rec.Pair.Generation
	if entry, cur, err := pr.load(ctx); err == nil {
		if cur.Pair.Generation > gen {
			pr.adopt(cur.Pair)
			return cur.Pair, nil
		}
		if entry.Version != claimed && (cur.Lease == nil || cur.Lease.Holder != pr.opts.Holder) {
			claimed = "" // someone else's claim: do not overwrite it
		}
	}
	reason := "the issuer rejected the refresh token: spent or revoked"
	if rvu := rec.Pair.RefreshValidUntil; !rvu.IsZero() && !pr.opts.Clock.Now().Before(rvu.Add(-pr.opts.ClockSkew)) {
		reason = "the issuer rejected the refresh token, which expired at " + rvu.UTC().Format(time.RFC3339)
	}
	return pr.markBroken(ctx, rec, claimed, reason, cause)
}

// markBroken records that the lineage cannot be continued at rec's
// generation (claimed: the version to swap against; empty: do not write),
// so that no instance presents its token again. With a bootstrap set it
// returns errRetry, and the refresh loop heals the lineage.
func (pr *protocol) markBroken(ctx context.Context, rec *provider.Record, claimed provider.Version, reason string, cause error) (provider.Pair, error) {
	gen := rec.Pair.Generation
	attrs := []slog.Attr{slog.Uint64("generation", gen), slog.String("reason", reason)}
	if cause != nil {
		attrs = append(attrs, slog.String("error", cause.Error()))
	}
	pr.event(EventLineageBroken, attrs...)
	if pr.policy.RejectionRevokesAuthToken {
		pr.cache.unserve(rec.Pair)
	}
	// This process never presents that token again, whatever the store
	// says (a mark that cannot be written leaves the lease behind).
	pr.mu.Lock()
	pr.rejectedGen = gen + 1
	pr.mu.Unlock()
	if claimed != "" {
		pr.writeBroken(ctx, rec, claimed, reason)
	}
	if pr.opts.Bootstrap != nil {
		return provider.Pair{}, errRetry
	}
	err := pr.brokenError(gen, reason)
	if cause != nil {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	return provider.Pair{}, err
}

// writeBroken stores the broken mark against the claimed version, trying
// again (with backoff, in the background once the refresh has returned)
// until it lands, another instance changed the record (a newer generation,
// or a claim of its own: its own outcome stands), or the engine closes.
// While it has not landed, this holder's expired lease is all that keeps
// others from presenting the rejected token, so it never gives up early.
func (pr *protocol) writeBroken(ctx context.Context, rec *provider.Record, claimed provider.Version, reason string) {
	try := func(ctx context.Context) (done bool) {
		mark := rec.Clone()
		mark.Lease = nil
		mark.Broken = &provider.Broken{Generation: rec.Pair.Generation, Reason: reason}
		_, err := pr.swap(ctx, claimed, mark)
		if err == nil {
			return true
		}
		if errors.Is(err, provider.ErrConflict) {
			entry, cur, lerr := pr.load(ctx)
			if lerr == nil && (cur.Pair.Generation != rec.Pair.Generation || (cur.Lease != nil && cur.Lease.Holder != pr.opts.Holder) || cur.Broken != nil) {
				return true // another instance moved on, or marked it
			}
			if lerr == nil {
				claimed, rec = entry.Version, cur
			}
		}
		pr.opts.Logger.Warn("credhelper refresh: could not mark the lineage broken yet; retrying", slog.String("key", pr.key), slog.String("error", err.Error()))
		return false
	}
	if try(ctx) {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return
	}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		wait := 100 * time.Millisecond
		for {
			if pr.sleep(context.Background(), wait) != nil {
				return // closed
			}
			ctx, cancel := context.WithTimeout(context.Background(), pr.storeTimeout())
			done := try(ctx)
			cancel()
			if done {
				return
			}
			wait = min(wait*2, pr.opts.LeaseDuration/4)
		}
	}()
}

func (pr *protocol) brokenError(gen uint64, reason string) error {
	return fmt.Errorf("refresh: lineage of %s broken at generation %d (%s): %w", pr.key, gen, reason, provider.ErrLineageBroken)
}
