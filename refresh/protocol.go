package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// The refresh protocol, steps 2 to 8 of DESIGN section 5 (step 1, the
// cache, is Engine in cache.go). protocol owns these steps and their
// state; it reaches the cache only through cacheSeam. One method per
// step, in order, all in this file:
//
//	        refresh           one shared refresh: steps 2 to 8 in a loop,
//	                          back to step 2 whenever the store changed
//	                          under it (finishPending first: step 7 of an
//	                          earlier refresh, still pending)
//	step 2  decide            load the record (load); adopt a newer pair,
//	                          serve one that is not due, or say why it
//	                          cannot be refreshed (outcomes.go), healing
//	                          if it can (heal.go). prime is step 2 for a
//	                          cold caller.
//	step 3  awaitLease        another holder's live lease: wait for it
//	        checkSpend        may this instance spend at all (lifetime,
//	                          store writable, journal trusted)
//	step 4  claim             lease by compare-and-swap, renewed (claim.go)
//	step 5  spend             ask first when taking over (spentElsewhere,
//	                          awaitPredecessor); call the issuer once
//	                          (callIssuer), a maybe-delivered call retried
//	                          once; rejected and released outcomes
//	                          (outcomes.go)
//	step 6  journalNext       journal the new pair before anything else
//	                          (journal.go)
//	step 7  commitPending     commit by compare-and-swap against the claim;
//	                          deferred commits retried (retryCommitLater)
//	step 8  clearPending      drop the journal entry; publish through the
//	                          seam (serveRefreshed)
//
// On start, and whenever a dead neighbour's claim stands in the way, the
// journal is replayed (journal.go: replayOnce, replayJournals). The
// methods of the steps come first below, then the plumbing (construction,
// Close, sleep, swap). A read-only backend refreshed in memory runs
// inMemory (memory.go) instead, through the same seam.

// protocol runs steps 2 to 8 for one key. It holds what the protocol
// needs (the backend, the issuer and its policy, the journal) and its own
// state (the pending commit, the rejected generation, the issuer call in
// flight); the cache that wraps it (Engine) holds what callers are served.
type protocol struct {
	backend  provider.Backend
	issuer   provider.Issuer
	policy   provider.RefreshPolicy // the issuer's, asked once at New
	key      string
	opts     *Options // the Engine's
	readOnly bool     // the backend cannot store a refreshed pair
	journal  *journal
	cache    cacheSeam

	// commitMu serialises commit attempts of the pending pair.
	commitMu sync.Mutex

	mu          sync.Mutex // guards the fields below
	rejectedGen uint64     // 1 + the generation whose token the issuer rejected here; 0: none
	issuing     time.Time  // deadline of an issuer call whose answer is not yet journaled; zero: none
	pending     *pendingCommit
	replayed    bool
	closed      bool          // start no background work
	stopping    bool          // CloseNow: start no issuer call
	stop        chan struct{} // closed at close: waits end
	wg          sync.WaitGroup
}

// cacheSeam is all the protocol sees of the cache that wraps it (Engine,
// cache.go): the pair callers are served, when this instance would
// refresh a pair (step 1's window and jitter), and how to change what
// callers are served.
type cacheSeam interface {
	// served returns the pair callers are served, if any.
	served() (provider.Pair, bool)
	// refreshAt is when this instance refreshes p (the served schedule
	// when p is the served pair).
	refreshAt(p provider.Pair) time.Time
	// serve makes p the pair callers get, on its usual schedule (kept as
	// it is when p is already served).
	serve(p provider.Pair)
	// serveRefreshed makes p, a pair this instance refreshed or
	// committed, the pair callers get, to be refreshed in its window.
	serveRefreshed(p provider.Pair)
	// serveUnrefreshable serves p, which is not refreshed here (a broken
	// lineage), while it is usable.
	serveUnrefreshable(p provider.Pair)
	// serveDueNow serves p and makes it due at once (a lineage that is
	// about to be healed).
	serveDueNow(p provider.Pair)
	// unserve stops serving p if it is the served pair.
	unserve(p provider.Pair)
	// claimed tells that the refresh in flight holds a claim: Close waits
	// for it instead of cancelling it.
	claimed()
	// firstWarning reports whether no failure or broken lineage was
	// logged since the last good refresh, and marks one as logged.
	firstWarning() bool
}

// refresh runs steps 2 to 8 until it has a pair to publish, going back to
// step 2 whenever the store changed under it. forceGen, when set, demands
// a generation newer than *forceGen.
func (pr *protocol) refresh(ctx context.Context, forceGen *uint64) (provider.Pair, error) {
	pr.replayOnce(ctx)
	if p, ok, err := pr.finishPending(ctx); ok || err != nil {
		return p, err // step 7 of an earlier refresh, still pending
	}
	wait := 50 * time.Millisecond
	for {
		entry, rec, err := pr.load(ctx) // step 2
		if err != nil {
			return provider.Pair{}, err
		}
		if _, ok := pr.cache.served(); forceGen != nil && *forceGen == 0 && !ok {
			g := rec.Pair.Generation // forced with nothing cached: refresh what is stored
			forceGen = &g
		}
		p, done, err := pr.decide(ctx, entry, rec, forceGen)
		if errors.Is(err, errRetry) {
			continue
		}
		if done {
			return p, err
		}
		if again, err := pr.awaitLease(ctx, rec, &wait); again || err != nil { // step 3
			if err != nil {
				return provider.Pair{}, err
			}
			continue
		}
		if err := pr.checkSpend(ctx, rec.Pair); err != nil {
			if !(errors.As(err, new(*ExpiredError)) || errors.Is(err, provider.ErrLineageBroken)) || pr.opts.Bootstrap == nil {
				return provider.Pair{}, err
			}
			p, err := pr.heal(ctx, entry, rec, err.Error())
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
		h, err := pr.claim(ctx, entry, rec, provider.LeaseRefresh) // step 4
		if errors.Is(err, provider.ErrConflict) {
			continue
		}
		if err != nil {
			return provider.Pair{}, err
		}
		pr.opts.Trace.claimed(pr.key, rec.Pair.Generation)
		hctx, cancel := detached(ctx)
		p, err = pr.spend(hctx, rec, h, takeover) // steps 5 to 8
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
func (pr *protocol) decide(ctx context.Context, entry provider.Entry, rec *provider.Record, forceGen *uint64) (p provider.Pair, done bool, err error) {
	pair := rec.Pair
	now := pr.opts.Clock.Now()
	if rec.Broken != nil && rec.Broken.Generation == pair.Generation {
		if pr.opts.Bootstrap != nil && pr.canStore() {
			p, err := pr.heal(ctx, entry, rec, rec.Broken.Reason)
			return p, true, err
		}
		p, err := pr.servedBroken(rec, forceGen != nil)
		return p, true, err
	}
	forced := forceGen != nil && pair.Generation <= *forceGen
	if pair.Never() {
		if forced {
			return provider.Pair{}, true, fmt.Errorf("refresh: the pair under %s never expires and is not refreshed", pr.key)
		}
		pr.adopt(pair)
		return pair, true, nil
	}
	if !forced && now.Before(pr.cache.refreshAt(pair)) {
		pr.adopt(pair)
		return pair, true, nil
	}
	if !pr.canRefresh() {
		// Never spend what cannot be stored: serve the pair while it is
		// usable, then say why it is not refreshed.
		if pair.ValidFor(now, pr.opts.MinValidity) {
			pr.adopt(pair)
			return pair, true, nil
		}
		if !now.Before(pair.ValidUntil) && (pr.issuer == nil || pr.refreshable(pair, now) != nil) {
			return provider.Pair{}, true, &ExpiredError{Key: pr.key, Generation: pair.Generation, Token: "auth token", At: pair.ValidUntil}
		}
		if pr.issuer == nil {
			return provider.Pair{}, true, pr.errNoIssuer(pair)
		}
		return provider.Pair{}, true, &ReadOnlyError{Key: pr.key, Generation: pair.Generation}
	}
	return provider.Pair{}, false, nil
}

// prime is step 2 for a caller that finds nothing cached: it serves the
// stored pair while it is usable, whatever becomes of its refresh, and
// reports whether a pair is now served (false, and no error: the pair
// must be refreshed before anyone can use it).
func (pr *protocol) prime(ctx context.Context) (bool, error) {
	// A dead neighbour's journaled pair is committed first, also when no
	// refresh would follow (a broken record's holder that exited with its
	// commit pending).
	pr.replayOnce(ctx)
	_, rec, err := pr.load(ctx)
	if err != nil {
		return false, err
	}
	if _, ok := pr.cache.served(); ok {
		return true, nil // published meanwhile
	}
	usable := rec.Pair.ValidFor(pr.opts.Clock.Now(), pr.opts.MinValidity+slowSlack)
	if rec.Broken != nil && rec.Broken.Generation == rec.Pair.Generation {
		if pr.opts.Bootstrap != nil && pr.canStore() {
			// The lineage will be healed: wait for it, unless the current
			// pair is still usable (its issuer did not revoke it).
			if pr.policy.RejectionRevokesAuthToken || !usable {
				return false, nil
			}
			if old, ok := pr.cache.served(); !ok || !SameLineage(old, rec.Pair) {
				pr.event(EventAdopted, slog.Uint64("generation", rec.Pair.Generation))
			}
			pr.cache.serveDueNow(rec.Pair) // heal at once
			return true, nil
		}
		if _, err := pr.servedBroken(rec, false); err != nil {
			return false, err
		}
		return true, nil
	}
	if !usable {
		return false, nil
	}
	pr.adopt(rec.Pair)
	return true, nil
}

// load reads and decodes the record (step 2, and wherever the protocol
// looks again).
func (pr *protocol) load(ctx context.Context) (provider.Entry, *provider.Record, error) {
	entry, err := pr.backend.Load(ctx, pr.key)
	if errors.Is(err, provider.ErrNotFound) {
		return entry, nil, err // the backend's error names the key
	}
	if err != nil {
		return entry, nil, fmt.Errorf("refresh: load %s: %w", pr.key, err)
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		return entry, nil, fmt.Errorf("refresh: record under %s: %w", pr.key, err)
	}
	return entry, rec, nil
}

// adopt serves a pair this instance did not refresh itself (step 2).
func (pr *protocol) adopt(p provider.Pair) {
	if old, ok := pr.cache.served(); !ok || !SameLineage(old, p) {
		pr.event(EventAdopted, slog.Uint64("generation", p.Generation))
	}
	pr.cache.serve(p)
}

// errRetry tells the refresh loop to load the record and decide again.
var errRetry = errors.New("refresh: retry")

// awaitLease is step 3: while another holder's lease on this generation
// is live, wait for its generation (callers keep getting the current pair
// meanwhile), backing off up to a second. again asks for step 2 once the
// wait is over, or once a dead neighbour's journaled pair was committed.
func (pr *protocol) awaitLease(ctx context.Context, rec *provider.Record, wait *time.Duration) (again bool, err error) {
	l := rec.Lease
	if l == nil || l.Holder == pr.opts.Holder || l.Generation != rec.Pair.Generation {
		return false, nil
	}
	if n, _ := pr.replayJournals(ctx); n > 0 {
		return true, nil // a dead neighbour's journaled pair was just handled
	}
	if !pr.opts.Clock.Now().Before(l.Expires.Add(pr.opts.ClockSkew)) {
		return false, nil // expired: step 4 takes over
	}
	pr.event(EventLeaseWait, slog.String("lease_holder", l.Holder), slog.Uint64("generation", rec.Pair.Generation))
	if err := pr.sleep(ctx, *wait); err != nil {
		return false, fmt.Errorf("refresh: %s is being refreshed by %s, which has not finished: %w", pr.key, l.Holder, provider.Transient(err))
	}
	*wait = min(*wait*2, time.Second)
	return true, nil
}

// checkSpend says, before step 4, why this instance must not spend pair's
// refresh token: it can no longer be refreshed (an *ExpiredError, which a
// bootstrap can heal), no refresh could yield a usable pair, its successor
// could not be stored, or the journal directory is refused.
func (pr *protocol) checkSpend(ctx context.Context, pair provider.Pair) error {
	pr.mu.Lock()
	rejected := pr.rejectedGen == pair.Generation+1
	pr.mu.Unlock()
	if rejected {
		return pr.brokenError(pair.Generation, "the issuer rejected its refresh token here; the broken mark could not be stored")
	}
	if err := pr.refreshable(pair, pr.opts.Clock.Now()); err != nil {
		return err
	}
	if err := pr.checkLifetime(pair); err != nil {
		return err
	}
	if pair.Generation >= provider.MaxGeneration {
		return fmt.Errorf("refresh: the pair under %s is at generation %d, the last one a record can hold: %w", pr.key, pair.Generation, provider.ErrInvalidRecord)
	}
	if wc, ok := pr.backend.(provider.WriteChecker); ok {
		if err := wc.CheckWrite(ctx, pr.key); err != nil {
			return fmt.Errorf("refresh: not refreshing %s: the new pair could not be stored: %w", pr.key, err)
		}
	}
	if err := pr.journal.trusted(); err != nil {
		// A journal directory another user could write is never used;
		// rather than spend without one, refuse (a full or read-only one
		// is only logged: the pair then goes straight to the store).
		return fmt.Errorf("refresh: not refreshing %s: %w", pr.key, err)
	}
	return nil
}

// claim is step 4: it writes a lease of kind on rec's generation with
// compare-and-swap against entry's version and starts renewing it
// (claim.go). Losing the swap returns an error wrapping ErrConflict:
// another instance claimed first, the usual outcome of a race, logged at
// debug level.
func (pr *protocol) claim(ctx context.Context, entry provider.Entry, rec *provider.Record, kind provider.LeaseKind) (*claim, error) {
	c := rec.Clone()
	c.Lease = &provider.Lease{Holder: pr.opts.Holder, Expires: pr.opts.Clock.Now().Add(pr.opts.LeaseDuration), Generation: rec.Pair.Generation, Kind: kind}
	start := time.Now()
	v, err := pr.swap(ctx, entry.Version, c)
	if errors.Is(err, provider.ErrConflict) {
		pr.event(EventClaimLost, slog.Uint64("generation", rec.Pair.Generation))
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: claim %s: %w", pr.key, err)
	}
	// From here the claim must be carried through: Close waits for it, and
	// its work runs on a context Close does not cancel.
	pr.cache.claimed()
	return pr.hold(ctx, c, v, start), nil
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

// spend is step 5: it presents the claimed pair's refresh token to the
// issuer once, then journals the answer (step 6) and commits it (steps 7
// and 8). A takeover first asks the issuer, if it can tell, whether the
// token was already spent by the previous holder (spentElsewhere,
// awaitPredecessor). The helpers of this step follow it.
func (pr *protocol) spend(ctx context.Context, rec *provider.Record, h *claim, takeover bool) (provider.Pair, error) {
	pair := rec.Pair
	if takeover {
		spent, err := pr.spentElsewhere(h.callCtx, pair)
		if err != nil {
			pr.handBack(ctx, rec, h.stop())
			return provider.Pair{}, err
		}
		if spent {
			return pr.awaitPredecessor(ctx, rec, h, rec.Lease)
		}
	}
	pr.event(EventRefreshStarted, slog.Uint64("generation", pair.Generation))
	next, err := pr.callIssuer(h.callCtx, pair)
	if err != nil && !errors.Is(err, provider.ErrRefreshRejected) && !errors.Is(err, provider.ErrNotDelivered) {
		// Maybe delivered: the issuer may have spent the token. Only the
		// lease holder, at once, may present it again, and only while it
		// still holds the lease.
		if lost := h.held(); lost != nil {
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered, and the lease was lost, so the token is not presented again: %w: %w", pr.key, lost, err)
		}
		if pr.isStopping() {
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered, and the process is stopping: the claim is kept until it expires, so nobody presents the token meanwhile: %w: %w", pr.key, errClosed, err)
		}
		pr.opts.Logger.Warn("credhelper refresh: issuer call may have been delivered; retrying once with the same token",
			slog.String("key", pr.key), slog.String("error", err.Error()))
		next, err = pr.callIssuer(h.callCtx, pair)
		if err != nil && !errors.Is(err, provider.ErrRefreshRejected) {
			// Keep the lease: nobody else may present a maybe-spent token
			// until it expires. This instance retries after its backoff.
			h.stop()
			return provider.Pair{}, fmt.Errorf("refresh: issuer call for %s failed after the request may have been delivered; its claim stays on the record until it expires, so that nobody presents the possibly spent token meanwhile; after that, the next refresh asks the issuer's introspection endpoint whether the token was spent where one is configured, and otherwise presents it again: %w", pr.key, err)
		}
	}
	switch {
	case errors.Is(err, provider.ErrRefreshRejected):
		return pr.rejected(ctx, rec, h.stop(), err)
	case errors.Is(err, provider.ErrNotDelivered):
		pr.release(ctx, rec, h.stop())
		return provider.Pair{}, fmt.Errorf("refresh: issuer unreachable, the refresh token of %s is unspent: %w", pr.key, err)
	}
	pr.opts.Trace.issued(pr.key, pair.Generation)
	next.Generation = pair.Generation + 1
	nextRec := rec.Clone()
	nextRec.Pair = next
	nextRec.Lease, nextRec.Broken, nextRec.Healed = nil, nil, nil
	if err := pr.journalNext(rec, nextRec, h, "the issuer returned an unusable pair"); err != nil {
		return provider.Pair{}, err
	}
	return servedIfDeferred(pr.commitPending(ctx)) // steps 7 and 8
}

// callIssuer makes one issuer call, bounded by IssuerTimeout and by ctx
// (a held claim's call context, cancelled when the lease is lost). It is
// reported by IssuerCallInFlight from the call until the answer is
// journaled (journalNext clears it) or the call failed.
func (pr *protocol) callIssuer(ctx context.Context, p provider.Pair) (provider.Pair, error) {
	ctx, cancel := context.WithTimeout(ctx, pr.opts.IssuerTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	pr.setIssuing(dl)
	pr.opts.Trace.issuing(pr.key, p.Generation)
	next, err := pr.issuer.Refresh(ctx, p)
	if err != nil {
		pr.setIssuing(time.Time{})
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
func (pr *protocol) spentElsewhere(ctx context.Context, pair provider.Pair) (bool, error) {
	in, ok := pr.issuer.(provider.Introspector)
	if !ok {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(pr.opts.IssuerTimeout, pr.opts.LeaseDuration/3))
	defer cancel()
	active, err := in.RefreshTokenActive(ctx, pair)
	if errors.Is(err, provider.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, provider.Transient(fmt.Errorf("refresh: could not ask the issuer whether the refresh token of %s (generation %d), which may already have been presented, is still active; it is not presented until that is known: %w", pr.key, pair.Generation, err))
	}
	return !active, nil
}

// awaitPredecessor waits, keeping this instance's claim so that nobody
// presents the spent token, for the commit of the holder that spent it
// (cut off from the store, or dead with a journal on this host). It waits
// up to LeaseDuration plus ClockSkew, then releases the claim, so that
// the question is asked again later. Only once the predecessor has had a
// whole lifetime of the pair (or 10 minutes when that is unknown) since
// its lease expired is the lineage marked broken, still without
// presenting anything, so that a bootstrap, if set, can heal it.
func (pr *protocol) awaitPredecessor(ctx context.Context, rec *provider.Record, h *claim, predecessor *provider.Lease) (provider.Pair, error) {
	gen := rec.Pair.Generation
	pr.event(EventSpentElsewhere, slog.Uint64("generation", gen), slog.String("previous_holder", predecessor.Holder))
	deadline := time.Now().Add(pr.opts.LeaseDuration + pr.opts.ClockSkew)
	wait := 50 * time.Millisecond
	for {
		_, _ = pr.replayJournals(ctx)
		if _, cur, err := pr.load(ctx); err == nil && cur.Pair.Generation > gen {
			h.stop()
			pr.adopt(cur.Pair)
			return cur.Pair, nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		if err := pr.sleep(ctx, min(wait, time.Until(deadline))); err != nil {
			break
		}
		wait = min(wait*2, time.Second)
	}
	version := h.stop()
	grace := 10 * time.Minute
	if lt, ok := rec.Pair.Lifetime(); ok {
		grace = lt
	}
	if pr.opts.Clock.Now().Before(predecessor.Expires.Add(pr.opts.ClockSkew + grace)) {
		// Put the record back as it was, the predecessor's expired lease
		// on it: whoever tries next is taking over too, and asks first.
		pr.handBack(ctx, rec, version)
		return provider.Pair{}, provider.Transient(fmt.Errorf("refresh: the refresh token of %s (generation %d) was already spent by %s, whose commit has not arrived yet; waiting for it", pr.key, gen, predecessor.Holder))
	}
	return pr.markBroken(ctx, rec, version, "the refresh token was spent by a holder whose commit never arrived", nil)
}

// handBack puts the record back as it was loaded (with the lease it carried,
// if any), so that whoever claims next asks the issuer first too.
func (pr *protocol) handBack(ctx context.Context, rec *provider.Record, version provider.Version) {
	if _, err := pr.swap(ctx, version, rec); err != nil {
		pr.opts.Logger.Warn("credhelper refresh: could not hand the claim back; it will expire", slog.String("key", pr.key), slog.String("error", err.Error()))
	}
}

// release drops an unspent claim so another instance need not wait for it
// to expire.
func (pr *protocol) release(ctx context.Context, rec *provider.Record, claimed provider.Version) {
	r := rec.Clone()
	r.Lease = nil
	if _, err := pr.swap(ctx, claimed, r); err != nil {
		pr.opts.Logger.Warn("credhelper refresh: could not release the lease; it will expire", slog.String("key", pr.key), slog.String("error", err.Error()))
	}
}

// journalNext is step 6: it journals nextRec, the successor of rec
// obtained under claim h, ends the claim's renewal and makes nextRec the
// pending commit, to be committed against the claim's current version.
// unusable says what returned nextRec, should it not be a valid pair.
func (pr *protocol) journalNext(rec, nextRec *provider.Record, h *claim, unusable string) error {
	next := &nextRec.Pair
	if next.IssuedAt.IsZero() {
		next.IssuedAt = pr.opts.Clock.Now().Truncate(time.Second)
	}
	if err := next.Validate(); err != nil {
		// Should never happen with a sound issuer; the pair is lost, and
		// the error says so without its content.
		pr.setIssuing(time.Time{})
		h.stop()
		pr.event(EventLineageBroken, slog.String("error", err.Error()))
		return fmt.Errorf("refresh: %s for %s: %w: %w", unusable, pr.key, err, provider.ErrLineageBroken)
	}
	p := &pendingCommit{spentGen: rec.Pair.Generation, spentHash: tokenDigest(rec.Pair.RefreshToken), next: nextRec, expected: h.current()}
	entry, jerr := pr.journal.write(p)
	if jerr != nil {
		// The backend is the more durable home anyway; commit at once.
		pr.opts.Logger.Error("credhelper refresh: could not journal the new pair; committing directly",
			slog.String("key", pr.key), slog.String("error", jerr.Error()))
	}
	p.entry = entry
	pr.setIssuing(time.Time{})
	pr.opts.Trace.journaled(pr.key, rec.Pair.Generation)
	// The lease was renewed while the issuer worked: commit against the
	// version it has now.
	p.expected = h.stop()
	pr.mu.Lock()
	pr.pending = p
	pr.mu.Unlock()
	return nil
}

// commitPending is step 7: it commits the pending pair against the
// claimed version, then clears it (step 8) and publishes it. On a
// transient failure it publishes the pair anyway (it is valid and
// journaled), starts a background retry and returns the pair with the
// error.
func (pr *protocol) commitPending(ctx context.Context) (provider.Pair, error) {
	pr.commitMu.Lock()
	defer pr.commitMu.Unlock()
	pr.mu.Lock()
	p := pr.pending
	pr.mu.Unlock()
	if p == nil {
		served, ok := pr.cache.served()
		if !ok {
			return provider.Pair{}, errors.New("refresh: nothing to commit")
		}
		return served, nil
	}
	next := p.next.Pair
	for {
		_, err := pr.swap(ctx, p.expected, p.next)
		if err == nil {
			pr.opts.Trace.committed(pr.key, next.Generation)
			pr.clearPending(p) // step 8
			pr.event(EventCommitted, slog.Uint64("generation", next.Generation))
			pr.cache.serveRefreshed(next)
			return next, nil
		}
		if errors.Is(err, provider.ErrConflict) {
			pr.event(EventConflict, slog.String("step", "commit"), slog.Uint64("generation", next.Generation))
			entry, cur, lerr := pr.load(ctx)
			if lerr == nil && SameLineage(cur.Pair, next) && cur.Broken == nil {
				// Our own write landed earlier and only its answer was
				// lost: it is committed.
				pr.opts.Trace.committed(pr.key, next.Generation)
				pr.clearPending(p)
				pr.event(EventCommitted, slog.Uint64("generation", next.Generation), slog.Bool("answer_lost", true))
				pr.cache.serveRefreshed(cur.Pair)
				return cur.Pair, nil
			}
			if lerr == nil {
				if cur.Broken != nil && cur.Broken.Generation == p.spentGen && cur.Pair.Generation == p.spentGen && p.next.Healed == nil {
					// While our commit waited, another instance took our
					// claim for dead, presented the token we had spent and
					// was refused: an issuer with reuse detection has
					// revoked the whole family, ours included. Never revive
					// a lineage declared broken; report ours orphaned.
					pr.event(EventOrphaned, slog.Uint64("orphaned_generation", next.Generation),
						slog.String("orphaned_token_sha256", provider.Fingerprint(next.AuthToken)),
						slog.String("reason", "lineage marked broken meanwhile"))
					pr.clearPending(p)
					return provider.Pair{}, pr.brokenError(p.spentGen, cur.Broken.Reason)
				}
				takenOver := cur.Pair.Generation == p.spentGen && tokenDigest(cur.Pair.RefreshToken) == p.spentHash
				if cur.Pair.Generation >= next.Generation || !takenOver {
					// A newer generation won, or someone stored another
					// pair out of band (a person's put, another tool):
					// ours is orphaned. Say so, with a fingerprint only,
					// and adopt theirs.
					pr.event(EventOrphaned, slog.Uint64("orphaned_generation", next.Generation),
						slog.String("orphaned_token_sha256", provider.Fingerprint(next.AuthToken)),
						slog.Uint64("adopted_generation", cur.Pair.Generation))
					pr.clearPending(p)
					pr.adopt(cur.Pair)
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
		pr.event(EventCommitDeferred, slog.Uint64("generation", next.Generation), slog.String("error", err.Error()))
		pr.retryCommitLater()
		if p.next.Healed != nil {
			return provider.Pair{}, fmt.Errorf("refresh: commit of the healed pair of %s deferred (it is served once stored): %w", pr.key, err)
		}
		if served, ok := pr.cache.served(); !ok || !SameLineage(served, next) {
			pr.cache.serveRefreshed(next)
		}
		return next, fmt.Errorf("refresh: commit of %s deferred: %w", pr.key, err)
	}
}

// servedIfDeferred turns a deferred commit (the pair journaled, served
// from memory and its commit retried in the background) into the
// refresh's success.
func servedIfDeferred(committed provider.Pair, err error) (provider.Pair, error) {
	if err != nil && committed.AuthToken != "" {
		return committed, nil
	}
	return committed, err
}

// finishPending retries a deferred commit before any new refresh, so this
// process never presents a token it has already spent. ok reports that the
// caller should use the returned pair (or error) rather than refresh.
func (pr *protocol) finishPending(ctx context.Context) (provider.Pair, bool, error) {
	pr.mu.Lock()
	p := pr.pending
	pr.mu.Unlock()
	if p == nil {
		return provider.Pair{}, false, nil
	}
	pair, err := pr.commitPending(ctx)
	if err == nil {
		return pair, true, nil
	}
	if pair.AuthToken != "" && pair.ValidFor(pr.opts.Clock.Now(), pr.opts.MinValidity) {
		return pair, true, nil // keep serving it from memory
	}
	return provider.Pair{}, true, err
}

// retryCommitLater starts (once) a goroutine that retries the pending
// commit with backoff until it lands or the engine closes.
func (pr *protocol) retryCommitLater() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed || pr.pending == nil || pr.pending.retrying {
		return
	}
	pr.pending.retrying = true
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		d := pr.opts.RetryBackoff
		for {
			t := time.NewTimer(d)
			select {
			case <-pr.stop:
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), pr.storeTimeout())
			_, err := pr.commitPending(ctx)
			cancel()
			pr.mu.Lock()
			done := pr.pending == nil
			pr.mu.Unlock()
			if err == nil || done {
				return
			}
			// Retry well inside the lease: past LeaseDuration+ClockSkew the
			// others take our claim for dead and spend the token again.
			d = min(d*2, pr.opts.MaxRetryBackoff, pr.opts.LeaseDuration/4)
		}
	}()
}

// clearPending is step 8: the committed or superseded pair's journal entry
// is removed and nothing is pending any more.
func (pr *protocol) clearPending(p *pendingCommit) {
	if p.entry != nil {
		p.entry.remove()
	}
	pr.mu.Lock()
	if pr.pending == p {
		pr.pending = nil
	}
	pr.mu.Unlock()
}

// pendingCommit is an issued pair whose commit failed transiently.
type pendingCommit struct {
	spentGen  uint64           // generation whose refresh token was spent
	spentHash string           // tokenDigest of that refresh token
	next      *provider.Record // the record to commit
	expected  provider.Version // the version we claimed
	entry     *journalEntry    // its journal entry, nil if journaling failed
	retrying  bool             // a background retry runs; guarded by protocol.mu
}

// newProtocol returns the protocol for key, talking to cache.
func newProtocol(backend provider.Backend, issuer provider.Issuer, key string, opts *Options, cache cacheSeam) *protocol {
	pr := &protocol{
		backend: backend,
		issuer:  issuer,
		policy:  provider.PolicyOf(issuer),
		key:     key,
		opts:    opts,
		journal: &journal{dir: opts.JournalDir, key: key, holder: opts.Holder},
		cache:   cache,
		stop:    make(chan struct{}),
	}
	if ro, ok := backend.(provider.ReadOnlyBackend); ok && ro.ReadOnly() {
		pr.readOnly = true
	}
	return pr
}

// canRefresh reports whether this instance may spend refresh tokens: it
// has an issuer, and the backend can store what a refresh returns (or the
// caller opted into refreshing in memory).
func (pr *protocol) canRefresh() bool {
	return pr.issuer != nil && (!pr.readOnly || pr.opts.UnsafeRefreshInMemory)
}

// inMemory reports whether refreshes are kept in memory (memory.go).
func (pr *protocol) inMemory() bool {
	return pr.readOnly && pr.opts.UnsafeRefreshInMemory && pr.issuer != nil
}

// issuingUntil reports an issuer call in flight (or answered but not yet
// journaled) and its deadline.
func (pr *protocol) issuingUntil() (time.Time, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.issuing, !pr.issuing.IsZero()
}

// setIssuing records (deadline) or clears (zero) an issuer call in flight.
func (pr *protocol) setIssuing(deadline time.Time) {
	pr.mu.Lock()
	pr.issuing = deadline
	pr.mu.Unlock()
}

// shut starts no more background work and ends waits (now: nor issuer
// calls).
func (pr *protocol) shut(now bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.closed, pr.stopping = true, now
	close(pr.stop)
}

// isStopping reports whether CloseNow was called.
func (pr *protocol) isStopping() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.stopping
}

// finish waits for background work and gives a pending commit one last
// attempt; its pair stays in the journal if that fails too.
func (pr *protocol) finish() error {
	pr.wg.Wait()
	pr.mu.Lock()
	p := pr.pending
	pr.mu.Unlock()
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pr.storeTimeout())
		defer cancel()
		if _, err := pr.commitPending(ctx); err != nil {
			return fmt.Errorf("refresh: commit of generation %d of %s still pending at close (kept in the journal): %w", p.next.Pair.Generation, pr.key, err)
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.pending != nil && pr.pending.entry != nil {
		pr.pending.entry.release()
	}
	return nil
}

// storeTimeout bounds one commit attempt outside a shared refresh.
func (pr *protocol) storeTimeout() time.Duration { return pr.opts.LeaseDuration / 2 }

// event logs and counts one protocol event.
func (pr *protocol) event(ev Event, attrs ...slog.Attr) { pr.opts.event(pr.key, ev, attrs...) }

// errClosed ends a wait cut short by Close.
var errClosed = errors.New("engine closed")

// sleep waits d with ±20% jitter, or until ctx ends or the engine closes.
func (pr *protocol) sleep(ctx context.Context, d time.Duration) error {
	d = d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-pr.stop:
		return errClosed
	case <-t.C:
		return nil
	}
}

// swap encodes rec and compare-and-swaps it.
func (pr *protocol) swap(ctx context.Context, expected provider.Version, rec *provider.Record) (provider.Version, error) {
	b, err := rec.Encode()
	if err != nil {
		return "", err
	}
	return pr.backend.CompareAndSwap(ctx, pr.key, expected, b)
}
