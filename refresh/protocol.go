package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// The refresh protocol, steps 2 to 8 of DESIGN section 5 (step 1, serving
// from the cache, is cache.go). Each step is one function below, in order:
//
//	step 2  load, decide      load the record; adopt a newer pair, serve
//	                          one that is not due, or say why it cannot be
//	                          refreshed (outcomes.go), healing if it can
//	step 3  awaitLease        another holder's live lease: wait for it
//	        checkSpend        may this instance spend at all (lifetime,
//	                          store writable, journal trusted)
//	step 4  claim             lease by compare-and-swap, renewed (claim.go)
//	step 5  spend             ask first when taking over (spentElsewhere,
//	                          awaitPredecessor); call the issuer once
//	                          (callIssuer), a maybe-delivered call retried
//	                          once; rejected and released outcomes
//	step 6  journalAndCommit  journal the new pair before anything else
//	step 7  commitPending     commit by compare-and-swap against the claim;
//	                          deferred commits retried (retryCommitLater)
//	step 8  clearPending      drop the journal entry; publish (cache.go)
//
// On start, and whenever a dead neighbour's claim stands in the way, the
// journal is replayed (journal.go).

// refresh runs steps 2 to 8 until it has a pair to publish, going back to
// step 2 whenever the store changed under it. forceGen, when set, demands
// a generation newer than *forceGen.
func (e *Engine) refresh(ctx context.Context, forceGen *uint64) (provider.Pair, error) {
	e.replayOnce(ctx)
	if p, ok, err := e.finishPending(ctx); ok || err != nil {
		return p, err // step 7 of an earlier refresh, still pending
	}
	wait := 50 * time.Millisecond
	for {
		entry, rec, err := e.load(ctx) // step 2
		if err != nil {
			return provider.Pair{}, err
		}
		if e.readOnly && e.opts.UnsafeRefreshInMemory && e.issuer != nil {
			return e.refreshInMemory(ctx, rec, forceGen)
		}
		if forceGen != nil && *forceGen == 0 && e.cur.Load() == nil {
			g := rec.Pair.Generation // forced with nothing cached: refresh what is stored
			forceGen = &g
		}
		p, done, err := e.decide(ctx, entry, rec, forceGen)
		if errors.Is(err, errRetry) {
			continue
		}
		if done {
			return p, err
		}
		if again, err := e.awaitLease(ctx, rec, &wait); again || err != nil { // step 3
			if err != nil {
				return provider.Pair{}, err
			}
			continue
		}
		if err := e.checkSpend(ctx, rec.Pair); err != nil {
			if !(errors.As(err, new(*ExpiredError)) || errors.Is(err, provider.ErrLineageBroken)) || e.opts.Bootstrap == nil {
				return provider.Pair{}, err
			}
			p, err := e.heal(ctx, entry, rec, err.Error())
			if errors.Is(err, errRetry) {
				continue
			}
			return p, err
		}
		// A lease on this generation still on the record (expired, or this
		// process's own from a flight that did not finish) means the token
		// may already have been presented: by a holder that died or is cut
		// off from the store, or by this process. Then the issuer is asked
		// first, where it can tell.
		takeover := rec.Lease != nil && rec.Lease.Generation == rec.Pair.Generation
		h, err := e.claim(ctx, entry, rec, provider.LeaseRefresh) // step 4
		if errors.Is(err, provider.ErrConflict) {
			continue
		}
		if err != nil {
			return provider.Pair{}, err
		}
		e.opts.Trace.claimed(e.key, rec.Pair.Generation)
		hctx, cancel := detached(ctx)
		p, err = e.spend(hctx, rec, h, takeover) // steps 5 to 8
		cancel()
		if errors.Is(err, errRetry) {
			continue
		}
		return p, err
	}
}

// decide is step 2's verdict on the loaded record: done reports that the
// refresh ends here, with the pair to publish (adopted, or served because
// it is not due for this instance, or a broken lineage's still-usable key)
// or with why it cannot be refreshed; errRetry asks for step 2 again (a
// heal changed the record). Otherwise the pair is to be refreshed.
func (e *Engine) decide(ctx context.Context, entry provider.Entry, rec *provider.Record, forceGen *uint64) (p provider.Pair, done bool, err error) {
	pair := rec.Pair
	now := e.opts.Clock.Now()
	if rec.Broken != nil && rec.Broken.Generation == pair.Generation {
		if e.opts.Bootstrap != nil && e.canStore() {
			p, err := e.heal(ctx, entry, rec, rec.Broken.Reason)
			return p, true, err
		}
		p, err := e.servedBroken(rec, forceGen != nil)
		return p, true, err
	}
	c := e.cachedFor(pair)
	forced := forceGen != nil && pair.Generation <= *forceGen
	if pair.Never() {
		if forced {
			return provider.Pair{}, true, fmt.Errorf("refresh: the pair under %s never expires and is not refreshed", e.key)
		}
		e.adopt(c)
		return pair, true, nil
	}
	if !forced && now.Before(c.refreshAt) {
		e.adopt(c)
		return pair, true, nil
	}
	if !e.canRefresh() {
		// Never spend what cannot be stored: serve the pair while it is
		// usable, then say why it is not refreshed.
		if pair.ValidFor(now, e.opts.MinValidity) {
			e.adopt(c)
			return pair, true, nil
		}
		if !now.Before(pair.ValidUntil) && (e.issuer == nil || e.refreshable(pair, now) != nil) {
			return provider.Pair{}, true, &ExpiredError{Key: e.key, Generation: pair.Generation, Token: "auth token", At: pair.ValidUntil}
		}
		if e.issuer == nil {
			return provider.Pair{}, true, e.errNoIssuer(pair)
		}
		return provider.Pair{}, true, &ReadOnlyError{Key: e.key, Generation: pair.Generation}
	}
	return provider.Pair{}, false, nil
}

// awaitLease is step 3: while another holder's lease on this generation
// is live, wait for its generation (callers keep getting the current pair
// meanwhile), backing off up to a second. again asks for step 2 once the
// wait is over, or once a dead neighbour's journaled pair was committed.
func (e *Engine) awaitLease(ctx context.Context, rec *provider.Record, wait *time.Duration) (again bool, err error) {
	l := rec.Lease
	if l == nil || l.Holder == e.opts.Holder || l.Generation != rec.Pair.Generation {
		return false, nil
	}
	if e.replayJournals(ctx) > 0 {
		return true, nil // a dead neighbour's journaled pair was just handled
	}
	if !e.opts.Clock.Now().Before(l.Expires.Add(e.opts.ClockSkew)) {
		return false, nil // expired: step 4 takes over
	}
	e.event(EventLeaseWait, slog.String("lease_holder", l.Holder), slog.Uint64("generation", rec.Pair.Generation))
	if err := e.sleep(ctx, *wait); err != nil {
		return false, fmt.Errorf("refresh: %s is being refreshed by %s, which has not finished: %w", e.key, l.Holder, provider.Transient(err))
	}
	*wait = min(*wait*2, time.Second)
	return true, nil
}

// checkSpend says, before step 4, why this instance must not spend pair's
// refresh token: it can no longer be refreshed (an *ExpiredError, which a
// bootstrap can heal), no refresh could yield a usable pair, its successor
// could not be stored, or the journal directory is refused.
func (e *Engine) checkSpend(ctx context.Context, pair provider.Pair) error {
	e.mu.Lock()
	rejected := e.rejectedGen == pair.Generation+1
	e.mu.Unlock()
	if rejected {
		return e.brokenError(pair.Generation, "the issuer rejected its refresh token here; the broken mark could not be stored")
	}
	if err := e.refreshable(pair, e.opts.Clock.Now()); err != nil {
		return err
	}
	if err := e.checkLifetime(pair); err != nil {
		return err
	}
	if pair.Generation >= provider.MaxGeneration {
		return fmt.Errorf("refresh: the pair under %s is at generation %d, the last one a record can hold: %w", e.key, pair.Generation, provider.ErrInvalidRecord)
	}
	if wc, ok := e.backend.(provider.WriteChecker); ok {
		if err := wc.CheckWrite(ctx, e.key); err != nil {
			return fmt.Errorf("refresh: not refreshing %s: the new pair could not be stored: %w", e.key, err)
		}
	}
	if err := e.journal.trusted(); err != nil {
		// A journal directory another user could write is never used;
		// rather than spend without one, refuse (a full or read-only one
		// is only logged: the pair then goes straight to the store).
		return fmt.Errorf("refresh: not refreshing %s: %w", e.key, err)
	}
	return nil
}

// errRetry tells the refresh loop to load the record and decide again.
var errRetry = errors.New("refresh: retry")

// load is step 2: read and decode the record.
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

// adopt publishes a pair this instance did not refresh itself.
func (e *Engine) adopt(c *cached) {
	if old := e.cur.Load(); old == nil || !sameLineage(old.pair, c.pair) {
		e.event(EventAdopted, slog.Uint64("generation", c.pair.Generation))
	}
	e.publish(c)
}

// claim is step 4: it writes a lease of kind on rec's generation with compare-and-swap
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

// callIssuer makes one issuer call, bounded by IssuerTimeout and by ctx
// (a held claim's call context, cancelled when the lease is lost). It is
// reported by IssuerCallInFlight from the call until the answer is
// journaled (journalAndCommit clears it) or the call failed.
func (e *Engine) callIssuer(ctx context.Context, p provider.Pair) (provider.Pair, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.IssuerTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	e.setIssuing(dl)
	e.opts.Trace.issuing(e.key, p.Generation)
	next, err := e.issuer.Refresh(ctx, p)
	if err != nil {
		e.setIssuing(time.Time{})
	}
	return next, err
}

// spentElsewhere asks an issuer that can tell whether pair's refresh
// token is still active, before a token that may already have been
// presented (another holder's expired lease, or this process's own, is on
// the record) is presented. It reports true when the issuer says it was
// spent. An issuer that cannot tell reports false (the token is presented
// as before); a question that fails is an error, and the token is not
// presented until it can be answered.
func (e *Engine) spentElsewhere(ctx context.Context, pair provider.Pair) (bool, error) {
	in, ok := e.issuer.(provider.Introspector)
	if !ok {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(e.opts.IssuerTimeout, e.opts.LeaseDuration/3))
	defer cancel()
	active, err := in.RefreshTokenActive(ctx, pair)
	if errors.Is(err, provider.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, provider.Transient(fmt.Errorf("refresh: could not ask the issuer whether the refresh token of %s (generation %d), which may already have been presented, is still active; it is not presented until that is known: %w", e.key, pair.Generation, err))
	}
	return !active, nil
}

// handBack puts the record back as it was loaded (with the lease it carried,
// if any), so that whoever claims next asks the issuer first too.
func (e *Engine) handBack(ctx context.Context, rec *provider.Record, version provider.Version) {
	if _, err := e.swap(ctx, version, rec); err != nil {
		e.opts.Logger.Warn("credhelper refresh: could not hand the claim back; it will expire", slog.String("key", e.key), slog.String("error", err.Error()))
	}
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
		e.handBack(ctx, rec, version)
		return provider.Pair{}, provider.Transient(fmt.Errorf("refresh: the refresh token of %s (generation %d) was already spent by %s, whose commit has not arrived yet; waiting for it", e.key, gen, predecessor.Holder))
	}
	return e.markBroken(ctx, rec, version, "the refresh token was spent by a holder whose commit never arrived", nil)
}

// spend is step 5: it presents the claimed pair's refresh token to the issuer, journals
// the answer and commits it. A takeover first asks the issuer, if it can
// tell, whether the token was already spent by the previous holder.
func (e *Engine) spend(ctx context.Context, rec *provider.Record, h *claim, takeover bool) (provider.Pair, error) {
	pair := rec.Pair
	if takeover {
		spent, err := e.spentElsewhere(h.callCtx, pair)
		if err != nil {
			e.handBack(ctx, rec, h.stop())
			return provider.Pair{}, err
		}
		if spent {
			return e.awaitPredecessor(ctx, rec, h, rec.Lease)
		}
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
	e.opts.Trace.issued(e.key, pair.Generation)
	next.Generation = pair.Generation + 1
	nextRec := rec.Clone()
	nextRec.Pair = next
	nextRec.Lease, nextRec.Broken, nextRec.Healed = nil, nil, nil
	return e.journalAndCommit(ctx, rec, nextRec, h, "the issuer returned an unusable pair")
}

// journalAndCommit is steps 6 and 7: it journals nextRec, the successor of rec obtained under
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
	e.opts.Trace.journaled(e.key, rec.Pair.Generation)
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
	if pair.AuthToken != "" && pair.ValidFor(e.opts.Clock.Now(), e.opts.MinValidity) {
		return pair, true, nil // keep serving it from memory
	}
	return provider.Pair{}, true, err
}

// commitPending is step 7: it commits the pending pair against the claimed version. On a
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
			e.opts.Trace.committed(e.key, next.Generation)
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
		// pair from memory and keep retrying in the background. Not a
		// healed pair: another instance may heal too (this one's claim
		// may have been taken for dead), and only the stored one may
		// carry its generation.
		e.event(EventCommitDeferred, slog.Uint64("generation", next.Generation), slog.String("error", err.Error()))
		e.retryCommitLater()
		if p.next.Healed != nil {
			return provider.Pair{}, fmt.Errorf("refresh: commit of the healed pair of %s deferred (it is served once stored): %w", e.key, err)
		}
		if c := e.cur.Load(); c == nil || !sameLineage(c.pair, next) {
			e.publish(e.schedule(next, true))
		}
		return next, fmt.Errorf("refresh: commit of %s deferred: %w", e.key, err)
	}
}

// clearPending is step 8: the committed or superseded pair's journal entry
// is removed and nothing is pending any more.
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

// release drops an unspent claim so another instance need not wait for it
// to expire.
func (e *Engine) release(ctx context.Context, rec *provider.Record, claimed provider.Version) {
	r := rec.Clone()
	r.Lease = nil
	if _, err := e.swap(ctx, claimed, r); err != nil {
		e.opts.Logger.Warn("credhelper refresh: could not release the lease; it will expire", slog.String("key", e.key), slog.String("error", err.Error()))
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
