package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// load reads and decodes the record.
func (e *Engine) load(ctx context.Context) (provider.Entry, *provider.Record, error) {
	entry, err := e.backend.Load(ctx, e.key)
	if errors.Is(err, provider.ErrNotFound) {
		return entry, nil, err // the backend's error names the key
	}
	if err != nil {
		return entry, nil, fmt.Errorf("refresh: load %s: %w", e.key, err)
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		return entry, nil, fmt.Errorf("refresh: record under %s: %w", e.key, err)
	}
	return entry, rec, nil
}

// refresh runs the protocol until it has a pair to publish. forceGen, when
// set, demands a generation newer than *forceGen.
func (e *Engine) refresh(ctx context.Context, forceGen *uint64) (provider.Pair, error) {
	e.replayOnce(ctx)
	if p, ok, err := e.finishPending(ctx); ok || err != nil {
		return p, err
	}
	wait := 50 * time.Millisecond
	for {
		entry, rec, err := e.load(ctx)
		if err != nil {
			return provider.Pair{}, err
		}
		if e.readOnly && e.opts.UnsafeRefreshInMemory && e.issuer != nil {
			return e.refreshInMemory(ctx, rec, forceGen)
		}
		pair := rec.Pair
		now := e.opts.Clock.Now()
		if forceGen != nil && *forceGen == 0 && e.cur.Load() == nil {
			g := pair.Generation // forced with nothing cached: refresh what is stored
			forceGen = &g
		}
		if rec.Broken != nil && rec.Broken.Generation == pair.Generation {
			if e.opts.Bootstrap != nil && e.canStore() {
				p, err := e.heal(ctx, entry, rec, rec.Broken.Reason)
				if errors.Is(err, errRetry) {
					continue
				}
				return p, err
			}
			return e.servedBroken(rec, forceGen != nil)
		}
		c := e.cachedFor(pair)
		forced := forceGen != nil && pair.Generation <= *forceGen
		if pair.Never() {
			if forced {
				return provider.Pair{}, fmt.Errorf("refresh: the pair under %s never expires and is not refreshed", e.key)
			}
			e.adopt(c)
			return pair, nil
		}
		if !forced && now.Before(c.refreshAt) {
			e.adopt(c)
			return pair, nil
		}
		if !e.canRefresh() {
			// Never spend what cannot be stored: serve the pair while it
			// is usable, then say why it is not refreshed.
			if pair.ValidFor(now, e.opts.MinValidity) {
				e.adopt(c)
				return pair, nil
			}
			if !now.Before(pair.ValidUntil) && (e.issuer == nil || e.refreshable(pair, now) != nil) {
				return provider.Pair{}, &ExpiredError{Key: e.key, Generation: pair.Generation, Token: "auth token", At: pair.ValidUntil}
			}
			if e.issuer == nil {
				return provider.Pair{}, e.errNoIssuer(pair)
			}
			return provider.Pair{}, &ReadOnlyError{Key: e.key, Generation: pair.Generation}
		}
		if l := rec.Lease; l != nil && l.Holder != e.opts.Holder && l.Generation == pair.Generation && e.replayJournals(ctx) > 0 {
			continue // a dead neighbour's journaled pair was just handled
		}
		if l := rec.Lease; l != nil && l.Holder != e.opts.Holder && l.Generation == pair.Generation && now.Before(l.Expires.Add(e.opts.ClockSkew)) {
			// Someone else is spending this refresh token: wait for their
			// generation. Callers keep getting the current pair meanwhile.
			e.event(EventLeaseWait, slog.String("lease_holder", l.Holder), slog.Uint64("generation", pair.Generation))
			if err := e.sleep(ctx, wait); err != nil {
				return provider.Pair{}, fmt.Errorf("refresh: %s is being refreshed by %s, which has not finished: %w", e.key, l.Holder, provider.Transient(err))
			}
			wait = min(wait*2, time.Second)
			continue
		}
		if err := e.refreshable(pair, now); err != nil {
			if e.opts.Bootstrap == nil {
				return provider.Pair{}, err
			}
			p, err := e.heal(ctx, entry, rec, err.Error())
			if errors.Is(err, errRetry) {
				continue
			}
			return p, err
		}
		if err := e.checkLifetime(pair); err != nil {
			return provider.Pair{}, err
		}
		if pair.Generation >= provider.MaxGeneration {
			// Its successor could not be stored: never spend for it.
			return provider.Pair{}, fmt.Errorf("refresh: the pair under %s is at generation %d, the last one a record can hold: %w", e.key, pair.Generation, provider.ErrInvalidRecord)
		}
		if wc, ok := e.backend.(provider.WriteChecker); ok {
			if err := wc.CheckWrite(ctx, e.key); err != nil {
				return provider.Pair{}, fmt.Errorf("refresh: not refreshing %s: the new pair could not be stored: %w", e.key, err)
			}
		}
		// A lease of another holder on this generation is still on the
		// record, expired: this instance takes over from a holder that
		// died, or that is alive but cut off from the store.
		takeover := rec.Lease != nil && rec.Lease.Holder != e.opts.Holder && rec.Lease.Generation == pair.Generation
		h, err := e.claim(ctx, entry, rec, provider.LeaseRefresh)
		if errors.Is(err, provider.ErrConflict) {
			continue
		}
		if err != nil {
			return provider.Pair{}, err
		}
		e.failpoint("claimed")
		hctx, cancel := detached(ctx)
		p, err := e.spend(hctx, rec, h, takeover)
		cancel()
		if errors.Is(err, errRetry) {
			continue
		}
		return p, err
	}
}

// errRetry tells the refresh loop to load the record and decide again.
var errRetry = errors.New("refresh: retry")

// claim writes a lease of kind on rec's generation with compare-and-swap
// against entry's version and starts renewing it. Losing the swap returns
// an error wrapping ErrConflict: another instance claimed first, the usual
// outcome of a race, logged at debug level.
func (e *Engine) claim(ctx context.Context, entry provider.Entry, rec *provider.Record, kind provider.LeaseKind) (*claim, error) {
	c := rec.Clone()
	c.Lease = &provider.Lease{Holder: e.opts.Holder, Expires: e.opts.Clock.Now().Add(e.opts.LeaseDuration), Generation: rec.Pair.Generation, Kind: kind}
	start := time.Now()
	v, err := e.swap(ctx, entry.Version, c)
	if errors.Is(err, provider.ErrConflict) {
		e.event(EventClaimLost, slog.Uint64("generation", rec.Pair.Generation))
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: claim %s: %w", e.key, err)
	}
	// From here the claim must be carried through: Close waits for it, and
	// its work runs on a context Close does not cancel.
	e.mu.Lock()
	e.holding = true
	e.mu.Unlock()
	return e.hold(ctx, c, v, start), nil
}

// detached returns ctx without the cancellation Close may send, keeping
// its deadline: the work of a held claim.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return context.WithCancel(d)
}

// canStore reports whether this instance may write the record.
func (e *Engine) canStore() bool { return !e.readOnly }

// refreshable reports why pair can no longer be refreshed, if it cannot:
// its refresh token is known to have expired, or the issuer needs a valid
// auth token and it has expired.
func (e *Engine) refreshable(pair provider.Pair, now time.Time) error {
	switch {
	case !pair.RefreshValidUntil.IsZero() && !now.Before(pair.RefreshValidUntil):
		return &ExpiredError{Key: e.key, Generation: pair.Generation, Token: "refresh token", At: pair.RefreshValidUntil}
	case !e.policy.RefreshAfterExpiry && !now.Before(pair.ValidUntil):
		return &ExpiredError{Key: e.key, Generation: pair.Generation, Token: "auth token", At: pair.ValidUntil}
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

// servedBroken handles a record whose lineage is marked broken at its
// current generation: the pair is served while it is usable if the issuer
// leaves its auth token valid (Momento), and never if the issuer revoked
// it with the family (OAuth2 reuse detection).
func (e *Engine) servedBroken(rec *provider.Record, forced bool) (provider.Pair, error) {
	err := e.servingBroken(rec)
	if err == nil && forced {
		err = e.brokenError(rec.Pair.Generation, rec.Broken.Reason)
	}
	if err != nil {
		return provider.Pair{}, err
	}
	c := e.schedule(rec.Pair, false)
	if old := e.cur.Load(); old == nil || !sameLineage(old.pair, rec.Pair) || old.refreshAt != c.refreshAt {
		e.publish(c)
	}
	return rec.Pair, nil
}

// servingBroken returns the error a caller gets for a broken lineage, or
// nil if its pair may still be served.
func (e *Engine) servingBroken(rec *provider.Record) error {
	pair := rec.Pair
	if e.policy.RejectionRevokesAuthToken || !pair.ValidFor(e.opts.Clock.Now(), e.opts.MinValidity+slowSlack) {
		e.unpublish(pair)
		return e.brokenError(pair.Generation, rec.Broken.Reason)
	}
	e.mu.Lock()
	warn := !e.warned
	e.warned = true
	e.mu.Unlock()
	if warn {
		e.opts.Logger.Warn("credhelper refresh: lineage broken; serving the current pair until it has less than the minimum validity left",
			slog.String("key", e.key), slog.Uint64("generation", pair.Generation), slog.String("reason", rec.Broken.Reason))
	}
	return nil
}

// unpublish stops serving p if it is the published pair.
func (e *Engine) unpublish(p provider.Pair) {
	if c := e.cur.Load(); c != nil && sameLineage(c.pair, p) && e.cur.CompareAndSwap(c, nil) {
		e.notify()
	}
}

// swap encodes rec and compare-and-swaps it.
func (e *Engine) swap(ctx context.Context, expected provider.Version, rec *provider.Record) (provider.Version, error) {
	b, err := rec.Encode()
	if err != nil {
		return "", err
	}
	return e.backend.CompareAndSwap(ctx, e.key, expected, b)
}

// adopt publishes a pair this instance did not refresh itself.
func (e *Engine) adopt(c *cached) {
	if old := e.cur.Load(); old == nil || !sameLineage(old.pair, c.pair) {
		e.event(EventAdopted, slog.Uint64("generation", c.pair.Generation))
	}
	e.publish(c)
}

// ErrNoIssuer reports a pair due for refresh by an engine that has no
// issuer. It wraps provider.ErrUnsupported.
var ErrNoIssuer = fmt.Errorf("no issuer configured: %w", provider.ErrUnsupported)

// errNoIssuer explains a due refresh without an issuer.
func (e *Engine) errNoIssuer(p provider.Pair) error {
	return fmt.Errorf("refresh: the pair under %s (generation %d) is due for refresh: %w", e.key, p.Generation, ErrNoIssuer)
}

// callIssuer makes one issuer call, bounded by IssuerTimeout and by ctx
// (a held claim's call context, cancelled when the lease is lost). It is
// reported by IssuerCallInFlight from the call until the answer is
// journaled (journalAndCommit clears it) or the call failed.
func (e *Engine) callIssuer(ctx context.Context, p provider.Pair) (provider.Pair, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.IssuerTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	e.setIssuing(dl)
	e.failpoint("issuing")
	next, err := e.issuer.Refresh(ctx, p)
	if err != nil {
		e.setIssuing(time.Time{})
	}
	return next, err
}

// spentElsewhere asks an issuer that can tell whether pair's refresh token
// is still active. It reports true only when the issuer says it was
// spent: the previous holder got an answer. An issuer that cannot tell,
// or a failed question, reports false, and the token is presented as
// before.
func (e *Engine) spentElsewhere(ctx context.Context, pair provider.Pair) bool {
	in, ok := e.issuer.(provider.Introspector)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, min(e.opts.IssuerTimeout, e.opts.LeaseDuration/3))
	defer cancel()
	active, err := in.RefreshTokenActive(ctx, pair)
	if err != nil {
		if !errors.Is(err, provider.ErrUnsupported) {
			e.opts.Logger.Warn("credhelper refresh: could not ask the issuer whether the refresh token is still active; presenting it",
				slog.String("key", e.key), slog.String("error", err.Error()))
		}
		return false
	}
	return !active
}

// awaitPredecessor waits, keeping this instance's claim so that nobody
// presents the spent token, for the commit of the holder that spent it
// (cut off from the store, or dead with a journal on this host). It waits
// up to LeaseDuration plus ClockSkew, then releases the claim, so that
// the question is asked again later. Only once the predecessor has had a
// whole lifetime of the pair (or 10 minutes when that is unknown) since
// its lease expired is the lineage marked broken, still without
// presenting anything, so that a bootstrap, if set, can heal it.
func (e *Engine) awaitPredecessor(ctx context.Context, rec *provider.Record, h *claim, predecessor *provider.Lease) (provider.Pair, error) {
	gen := rec.Pair.Generation
	e.event(EventSpentElsewhere, slog.Uint64("generation", gen), slog.String("previous_holder", predecessor.Holder))
	deadline := time.Now().Add(e.opts.LeaseDuration + e.opts.ClockSkew)
	wait := 50 * time.Millisecond
	for {
		e.replayJournals(ctx)
		if _, cur, err := e.load(ctx); err == nil && cur.Pair.Generation > gen {
			h.stop()
			e.adopt(e.cachedFor(cur.Pair))
			return cur.Pair, nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		if err := e.sleep(ctx, min(wait, time.Until(deadline))); err != nil {
			break
		}
		wait = min(wait*2, time.Second)
	}
	version := h.stop()
	grace := 10 * time.Minute
	if lt, ok := rec.Pair.Lifetime(); ok {
		grace = lt
	}
	if e.opts.Clock.Now().Before(predecessor.Expires.Add(e.opts.ClockSkew + grace)) {
		// Put the record back as it was, the predecessor's expired lease
		// on it: whoever tries next is taking over too, and asks first.
		if _, err := e.swap(ctx, version, rec); err != nil {
			e.opts.Logger.Warn("credhelper refresh: could not hand the claim back; it will expire", slog.String("key", e.key), slog.String("error", err.Error()))
		}
		return provider.Pair{}, provider.Transient(fmt.Errorf("refresh: the refresh token of %s (generation %d) was already spent by %s, whose commit has not arrived yet; waiting for it", e.key, gen, predecessor.Holder))
	}
	return e.markBroken(ctx, rec, version, "the refresh token was spent by a holder whose commit never arrived", nil)
}

// spend presents the claimed pair's refresh token to the issuer, journals
// the answer and commits it. A takeover first asks the issuer, if it can
// tell, whether the token was already spent by the previous holder.
func (e *Engine) spend(ctx context.Context, rec *provider.Record, h *claim, takeover bool) (provider.Pair, error) {
	pair := rec.Pair
	if takeover && e.spentElsewhere(h.callCtx, pair) {
		return e.awaitPredecessor(ctx, rec, h, rec.Lease)
	}
	e.event(EventRefreshStarted, slog.Uint64("generation", pair.Generation))
	next, err := e.callIssuer(h.callCtx, pair)
	if err != nil && !errors.Is(err, provider.ErrRefreshRejected) && !errors.Is(err, provider.ErrNotDelivered) {
		// Maybe delivered: the issuer may have spent the token. Only the
		// lease holder, at once, may present it again, and only while it
		// still holds the lease.
		if lost := h.held(); lost != nil {
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered, and the lease was lost, so the token is not presented again: %w: %w", e.key, lost, err)
		}
		e.mu.Lock()
		stopping := e.stopping
		e.mu.Unlock()
		if stopping {
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered, and the process is stopping: the claim is kept until it expires, so nobody presents the token meanwhile: %w: %w", e.key, errClosed, err)
		}
		e.opts.Logger.Warn("credhelper refresh: issuer call may have been delivered; retrying once with the same token",
			slog.String("key", e.key), slog.String("error", err.Error()))
		next, err = e.callIssuer(h.callCtx, pair)
		if err != nil && !errors.Is(err, provider.ErrRefreshRejected) {
			// Keep the lease: nobody else may present a maybe-spent token
			// until it expires. This instance retries after its backoff.
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered; this instance keeps the claim and retries with the same refresh token: %w", e.key, err)
		}
	}
	switch {
	case errors.Is(err, provider.ErrRefreshRejected):
		return e.rejected(ctx, rec, h.stop(), err)
	case errors.Is(err, provider.ErrNotDelivered):
		e.release(ctx, rec, h.stop())
		return provider.Pair{}, fmt.Errorf("refresh: issuer unreachable, the refresh token of %s is unspent: %w", e.key, err)
	}
	e.failpoint("issued")
	next.Generation = pair.Generation + 1
	nextRec := rec.Clone()
	nextRec.Pair = next
	nextRec.Lease, nextRec.Broken, nextRec.Healed = nil, nil, nil
	return e.journalAndCommit(ctx, rec, nextRec, h, "the issuer returned an unusable pair")
}

// journalAndCommit journals nextRec, the successor of rec obtained under
// claim h, then commits it against the claim's current version.
func (e *Engine) journalAndCommit(ctx context.Context, rec, nextRec *provider.Record, h *claim, unusable string) (provider.Pair, error) {
	next := &nextRec.Pair
	if next.IssuedAt.IsZero() {
		next.IssuedAt = e.opts.Clock.Now().Truncate(time.Second)
	}
	if err := next.Validate(); err != nil {
		// Should never happen with a sound issuer; the pair is lost, and
		// the error says so without its content.
		e.setIssuing(time.Time{})
		h.stop()
		e.event(EventLineageBroken, slog.String("error", err.Error()))
		return provider.Pair{}, fmt.Errorf("refresh: %s for %s: %w: %w", unusable, e.key, err, provider.ErrLineageBroken)
	}
	p := &pendingCommit{spentGen: rec.Pair.Generation, spentHash: tokenDigest(rec.Pair.RefreshToken), next: nextRec, expected: h.current()}
	entry, jerr := e.journal.write(p)
	if jerr != nil {
		// The backend is the more durable home anyway; commit at once.
		e.opts.Logger.Error("credhelper refresh: could not journal the new pair; committing directly",
			slog.String("key", e.key), slog.String("error", jerr.Error()))
	}
	p.entry = entry
	e.setIssuing(time.Time{})
	e.failpoint("journaled")
	// The lease was renewed while the issuer worked: commit against the
	// version it has now.
	p.expected = h.stop()
	e.mu.Lock()
	e.pending = p
	e.mu.Unlock()
	committed, err := e.commitPending(ctx)
	if err != nil && committed.AuthToken != "" {
		// Deferred: the pair is journaled, published and being retried.
		return committed, nil
	}
	return committed, err
}

// release drops an unspent claim so another instance need not wait for it
// to expire.
func (e *Engine) release(ctx context.Context, rec *provider.Record, claimed provider.Version) {
	r := rec.Clone()
	r.Lease = nil
	if _, err := e.swap(ctx, claimed, r); err != nil {
		e.opts.Logger.Warn("credhelper refresh: could not release the lease; it will expire", slog.String("key", e.key), slog.String("error", err.Error()))
	}
}

// rejected handles an issuer's refusal: adopt a newer generation if one was
// committed meanwhile, else mark the lineage broken so that no instance
// presents the spent token again (and heal it, if a bootstrap is set).
func (e *Engine) rejected(ctx context.Context, rec *provider.Record, claimed provider.Version, cause error) (provider.Pair, error) {
	gen := rec.Pair.Generation
	if entry, cur, err := e.load(ctx); err == nil {
		if cur.Pair.Generation > gen {
			e.adopt(e.cachedFor(cur.Pair))
			return cur.Pair, nil
		}
		if entry.Version != claimed && (cur.Lease == nil || cur.Lease.Holder != e.opts.Holder) {
			claimed = "" // someone else's claim: do not overwrite it
		}
	}
	reason := "the issuer rejected the refresh token: spent or revoked"
	if rvu := rec.Pair.RefreshValidUntil; !rvu.IsZero() && !e.opts.Clock.Now().Before(rvu.Add(-e.opts.ClockSkew)) {
		reason = "the issuer rejected the refresh token, which expired at " + rvu.UTC().Format(time.RFC3339)
	}
	return e.markBroken(ctx, rec, claimed, reason, cause)
}

// markBroken records that the lineage cannot be continued at rec's
// generation (claimed: the version to swap against; empty: do not write),
// so that no instance presents its token again. With a bootstrap set it
// returns errRetry, and the refresh loop heals the lineage.
func (e *Engine) markBroken(ctx context.Context, rec *provider.Record, claimed provider.Version, reason string, cause error) (provider.Pair, error) {
	gen := rec.Pair.Generation
	attrs := []slog.Attr{slog.Uint64("generation", gen), slog.String("reason", reason)}
	if cause != nil {
		attrs = append(attrs, slog.String("error", cause.Error()))
	}
	e.event(EventLineageBroken, attrs...)
	if e.policy.RejectionRevokesAuthToken {
		e.unpublish(rec.Pair)
	}
	if claimed != "" {
		mark := rec.Clone()
		mark.Lease = nil
		mark.Broken = &provider.Broken{Generation: gen, Reason: reason}
		if _, err := e.swap(ctx, claimed, mark); err != nil {
			e.opts.Logger.Warn("credhelper refresh: could not mark the lineage broken", slog.String("key", e.key), slog.String("error", err.Error()))
		}
	}
	if e.opts.Bootstrap != nil {
		return provider.Pair{}, errRetry
	}
	err := e.brokenError(gen, reason)
	if cause != nil {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	return provider.Pair{}, err
}

func (e *Engine) brokenError(gen uint64, reason string) error {
	return fmt.Errorf("refresh: lineage of %s broken at generation %d (%s): %w", e.key, gen, reason, provider.ErrLineageBroken)
}

// finishPending retries a deferred commit before any new refresh, so this
// process never presents a token it has already spent. ok reports that the
// caller should use the returned pair (or error) rather than refresh.
func (e *Engine) finishPending(ctx context.Context) (provider.Pair, bool, error) {
	e.mu.Lock()
	p := e.pending
	e.mu.Unlock()
	if p == nil {
		return provider.Pair{}, false, nil
	}
	pair, err := e.commitPending(ctx)
	if err == nil {
		return pair, true, nil
	}
	if pair.ValidFor(e.opts.Clock.Now(), e.opts.MinValidity) {
		return pair, true, nil // keep serving it from memory
	}
	return provider.Pair{}, true, err
}

// commitPending commits the pending pair against the claimed version. On a
// transient failure it publishes the pair anyway (it is valid and
// journaled), starts a background retry and returns the pair with the
// error.
func (e *Engine) commitPending(ctx context.Context) (provider.Pair, error) {
	e.commitMu.Lock()
	defer e.commitMu.Unlock()
	e.mu.Lock()
	p := e.pending
	e.mu.Unlock()
	if p == nil {
		c := e.cur.Load()
		if c == nil {
			return provider.Pair{}, errors.New("refresh: nothing to commit")
		}
		return c.pair, nil
	}
	next := p.next.Pair
	for {
		_, err := e.swap(ctx, p.expected, p.next)
		if err == nil {
			e.failpoint("committed")
			e.clearPending(p)
			e.event(EventCommitted, slog.Uint64("generation", next.Generation))
			e.publish(e.schedule(next, true))
			return next, nil
		}
		if errors.Is(err, provider.ErrConflict) {
			e.event(EventConflict, slog.String("step", "commit"), slog.Uint64("generation", next.Generation))
			entry, cur, lerr := e.load(ctx)
			if lerr == nil {
				if cur.Broken != nil && cur.Broken.Generation == p.spentGen && cur.Pair.Generation == p.spentGen && p.next.Healed == nil {
					// While our commit waited, another instance took our
					// claim for dead, presented the token we had spent and
					// was refused: an issuer with reuse detection has
					// revoked the whole family, ours included. Never revive
					// a lineage declared broken; report ours orphaned.
					e.event(EventOrphaned, slog.Uint64("orphaned_generation", next.Generation),
						slog.String("orphaned_token_sha256", provider.Fingerprint(next.AuthToken)),
						slog.String("reason", "lineage marked broken meanwhile"))
					e.clearPending(p)
					return provider.Pair{}, e.brokenError(p.spentGen, cur.Broken.Reason)
				}
				takenOver := cur.Pair.Generation == p.spentGen && tokenDigest(cur.Pair.RefreshToken) == p.spentHash
				if cur.Pair.Generation >= next.Generation || !takenOver {
					// A newer generation won, or someone stored another
					// pair out of band (a person's put, another tool):
					// ours is orphaned. Say so, with a fingerprint only,
					// and adopt theirs.
					e.event(EventOrphaned, slog.Uint64("orphaned_generation", next.Generation),
						slog.String("orphaned_token_sha256", provider.Fingerprint(next.AuthToken)),
						slog.Uint64("adopted_generation", cur.Pair.Generation))
					e.clearPending(p)
					e.adopt(e.cachedFor(cur.Pair))
					return cur.Pair, nil
				}
				// Still the pair we spent, under someone else's claim: our
				// lease was taken over but nobody committed. Our pair is
				// the lineage's legitimate successor; commit it over the
				// claim, keeping whatever unknown fields the record has.
				merged := cur.Clone()
				merged.Pair = next
				merged.Lease = nil
				merged.Broken = nil
				merged.Healed = p.next.Healed
				p.next, p.expected = merged, entry.Version
				continue
			}
			err = lerr
		}
		// Transient or permanent backend failure: serve the journaled
		// pair from memory and keep retrying in the background.
		e.event(EventCommitDeferred, slog.Uint64("generation", next.Generation), slog.String("error", err.Error()))
		if c := e.cur.Load(); c == nil || !sameLineage(c.pair, next) {
			e.publish(e.schedule(next, true))
		}
		e.retryCommitLater()
		return next, fmt.Errorf("refresh: commit of %s deferred: %w", e.key, err)
	}
}

func (e *Engine) clearPending(p *pendingCommit) {
	if p.entry != nil {
		p.entry.remove()
	}
	e.mu.Lock()
	if e.pending == p {
		e.pending = nil
	}
	e.mu.Unlock()
}

// retryCommitLater starts (once) a goroutine that retries the pending
// commit with backoff until it lands or the engine closes.
func (e *Engine) retryCommitLater() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.pending == nil || e.pending.retrying {
		return
	}
	e.pending.retrying = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		d := e.opts.RetryBackoff
		for {
			t := time.NewTimer(d)
			select {
			case <-e.stop:
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), e.storeTimeout())
			_, err := e.commitPending(ctx)
			cancel()
			e.mu.Lock()
			done := e.pending == nil
			e.mu.Unlock()
			if err == nil || done {
				return
			}
			// Retry well inside the lease: past LeaseDuration+ClockSkew the
			// others take our claim for dead and spend the token again.
			d = min(d*2, e.opts.MaxRetryBackoff, e.opts.LeaseDuration/4)
		}
	}()
}

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
