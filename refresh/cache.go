package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Engine is a provider.CredentialProvider that refreshes one key's pair
// through the fleet-safe protocol. Create it with New; the zero value is not
// usable. It is safe for concurrent use.
type Engine struct {
	backend  provider.Backend
	issuer   provider.Issuer
	policy   provider.RefreshPolicy // the issuer's, asked once at New
	key      string
	opts     Options
	spread   float64 // this instance's point in the usable window, fixed at New
	readOnly bool
	journal  *journal

	// cur is the published pair; the hot path reads only this and the
	// coarse clock.
	cur    atomic.Pointer[cached]
	coarse *atomic.Int64 // Options.Clock.Coarse(), read on the hot path
	// changed is closed, and replaced, when a different pair is published.
	changed atomic.Pointer[chan struct{}]
	// releaseClock lets go of the shared coarse ticker at Close.
	releaseClock func()

	// commitMu serialises commit attempts of the pending pair.
	commitMu sync.Mutex

	mu           sync.Mutex         // guards the fields below
	flight       *call              // the shared refresh in progress, or nil
	flightCancel context.CancelFunc // cancels flight before it holds a claim
	holding      bool               // flight holds a claim: Close must wait
	stopping     bool               // CloseNow: start no issuer call
	rejectedGen  uint64             // 1 + the generation whose token the issuer rejected here; 0: none
	issuing      time.Time          // deadline of an issuer call whose answer is not yet journaled; zero: none
	notBefore    time.Time          // no new refresh before this, after a failure
	backoff      time.Duration      // the next failure's delay
	lastErr      error              // why the last refresh failed
	warned       bool               // a failure while serving a usable pair was logged
	pending      *pendingCommit
	memPair      *provider.Pair // UnsafeRefreshInMemory: the in-memory chain head
	warnedRO     bool
	replayed     bool
	closed       bool
	stop         chan struct{}
	wg           sync.WaitGroup
}

var _ provider.CredentialProvider = (*Engine)(nil)

// slowSlack is the margin the slow path keeps above MinValidity, so that a
// pair judged usable still has MinValidity left when the caller gets it.
const slowSlack = 100 * time.Millisecond

// cached is one published pair and when to stop serving it blindly.
type cached struct {
	pair        provider.Pair
	freshUntil  int64     // coarse Unix ms before which the hot path serves pair
	refreshAt   time.Time // when this instance refreshes it
	usableUntil time.Time // the pair has MinValidity left until then
}

// call is one shared refresh; done is closed when pair and err are set.
type call struct {
	done chan struct{}
	pair provider.Pair
	err  error
}

// pendingCommit is an issued pair whose commit failed transiently.
type pendingCommit struct {
	spentGen  uint64           // generation whose refresh token was spent
	spentHash string           // tokenDigest of that refresh token
	next      *provider.Record // the record to commit
	expected  provider.Version // the version we claimed
	entry     *journalEntry    // its journal entry, nil if journaling failed
	retrying  bool             // a background retry runs; guarded by Engine.mu
}

// New returns an Engine for key on backend, refreshing through issuer. A nil
// issuer serves the stored pair while it is valid and reports that it
// cannot be refreshed once it is due.
func New(backend provider.Backend, issuer provider.Issuer, key string, optFns ...func(*Options)) (*Engine, error) {
	if backend == nil {
		return nil, errors.New("refresh: a backend is required")
	}
	if key == "" {
		return nil, errors.New("refresh: empty key")
	}
	o := defaultOptions()
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.finish(); err != nil {
		return nil, err
	}
	e := &Engine{
		backend: backend,
		issuer:  issuer,
		policy:  provider.PolicyOf(issuer),
		key:     key,
		opts:    o,
		spread:  nextSpread() * o.Jitter,
		journal: &journal{dir: o.JournalDir, key: key, holder: o.Holder},
		backoff: o.RetryBackoff,
		stop:    make(chan struct{}),
		coarse:  o.Clock.Coarse(),
	}
	if ro, ok := backend.(provider.ReadOnlyBackend); ok && ro.ReadOnly() {
		e.readOnly = true
	}
	ch := make(chan struct{})
	e.changed.Store(&ch)
	e.releaseClock = func() {}
	if _, ok := o.Clock.(SystemClock); ok {
		e.releaseClock = acquireCoarse()
	}
	return e, nil
}

// Changed returns a channel that is closed when the engine next publishes
// a different pair (a refresh committed, another instance's generation
// adopted, a pair dropped after its lineage broke). A long-lived holder
// (the agent) waits on it, together with a timer for NextRefresh, instead
// of polling; after it fires, call Changed again for the next change.
func (e *Engine) Changed() <-chan struct{} { return *e.changed.Load() }

// notify wakes everyone waiting on Changed.
func (e *Engine) notify() {
	ch := make(chan struct{})
	if old := e.changed.Swap(&ch); old != nil {
		close(*old)
	}
}

// spreadSeq numbers the engines of this process, and spreadSeed places the
// process's sequence at random: nextSpread returns evenly spaced points
// (the golden-ratio sequence) for the engines of one process, so that an
// agent's credentials minted in the same instant fall due evenly across the
// usable part of their window, and independent points across processes.
var (
	spreadSeq  atomic.Uint64
	spreadSeed = rand.Float64()
)

// nextSpread returns the next point in [0, 1).
func nextSpread() float64 {
	const phi = 0.6180339887498949
	_, frac := math.Modf(spreadSeed + float64(spreadSeq.Add(1))*phi)
	return frac
}

// NextRefresh returns when the cached pair enters its refresh window: the
// first Credential call after it starts the shared refresh. It is the zero
// Time when nothing is cached yet or the pair never expires. An agent uses
// it to wake exactly when a refresh is due instead of polling.
func (e *Engine) NextRefresh() time.Time {
	c := e.cur.Load()
	if c == nil || c.pair.Never() {
		return time.Time{}
	}
	return c.refreshAt
}

// Due reports whether the published pair is in this instance's refresh
// window and can be refreshed: a caller of an engine with DeferRefresh
// then refreshes it another way (a one-shot command starts a detached
// refresher).
func (e *Engine) Due() bool {
	c := e.cur.Load()
	return c != nil && !c.pair.Never() && e.canRefresh() && !e.opts.Clock.Now().Before(c.refreshAt)
}

// IssuerCallInFlight reports whether an issuer call (or a bootstrap) that
// may be answered with a new pair is in flight, or answered but not yet
// journaled, and until when it may run. A process that must stop (after
// an interrupt) waits for such a call, so the pair it may bring is not
// lost; anything else Close cancels at once.
func (e *Engine) IssuerCallInFlight() (deadline time.Time, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issuing, !e.issuing.IsZero()
}

// setIssuing records (deadline) or clears (zero) an issuer call in flight.
func (e *Engine) setIssuing(deadline time.Time) {
	e.mu.Lock()
	e.issuing = deadline
	e.mu.Unlock()
}

// Key returns the backend key this engine serves.
func (e *Engine) Key() string { return e.key }

// Credential returns a pair with at least MinValidity left, refreshing
// through the protocol when needed. A cached fresh pair is returned without
// locking, allocating or reading the clock.
func (e *Engine) Credential(ctx context.Context) (provider.Pair, error) {
	if c := e.cur.Load(); c != nil && e.coarse.Load() < c.freshUntil {
		return c.pair, nil
	}
	return e.slow(ctx, false)
}

// RefreshIfDue runs the shared refresh if the pair is in this instance's
// refresh window and waits for it, bounded by ctx (the refresh itself goes
// on for others); otherwise it returns the current pair. A process whose
// one job is to carry a refresh through (a one-shot command's detached
// refresher) uses it to learn the outcome.
func (e *Engine) RefreshIfDue(ctx context.Context) (provider.Pair, error) {
	p, err := e.Credential(ctx)
	if err != nil || !e.Due() {
		return p, err
	}
	cl := e.start(ctx, false, 0)
	select {
	case <-cl.done:
		return cl.pair, cl.err
	case <-ctx.Done():
		return provider.Pair{}, fmt.Errorf("refresh: waiting for a refresh of %s: %w", e.key, ctx.Err())
	}
}

// Refresh forces one refresh of the current generation through the same
// protocol, unless another instance has already committed a newer one, and
// returns the resulting pair.
func (e *Engine) Refresh(ctx context.Context) (provider.Pair, error) {
	return e.slow(ctx, true)
}

func (e *Engine) slow(ctx context.Context, force bool) (provider.Pair, error) {
	c := e.cur.Load()
	if c == nil && !force {
		// A cold caller is served the stored pair while it is usable,
		// whatever becomes of its refresh.
		var err error
		if c, err = e.prime(ctx); err != nil {
			return provider.Pair{}, err
		}
	}
	now := e.opts.Clock.Now()
	if !force && c != nil {
		if now.Before(c.refreshAt) {
			return c.pair, nil // only the coarse clock's lag brought us here
		}
		if now.Add(slowSlack).Before(c.usableUntil) {
			// In the window but still valid: serve it and let one shared
			// refresh run in the background (or, under DeferRefresh, let
			// the caller see Due and hand the refresh on).
			if !e.opts.DeferRefresh {
				e.start(ctx, false, 0)
			}
			return c.pair, nil
		}
	}
	var gen uint64
	if c != nil {
		gen = c.pair.Generation
	}
	cl := e.start(ctx, force, gen)
	select {
	case <-cl.done:
	case <-ctx.Done():
		return provider.Pair{}, fmt.Errorf("refresh: waiting for a refresh of %s: %w", e.key, ctx.Err())
	}
	if cl.err != nil {
		return provider.Pair{}, cl.err
	}
	if now := e.opts.Clock.Now(); !cl.pair.ValidFor(now, e.opts.MinValidity+slowSlack) {
		if err := e.checkLifetime(cl.pair); err != nil {
			return provider.Pair{}, err
		}
		return provider.Pair{}, fmt.Errorf("refresh: the pair for %s has less than %v left: %w", e.key, e.opts.MinValidity, provider.ErrExpired)
	}
	return cl.pair, nil
}

// prime loads the stored pair for a caller that finds nothing cached and
// publishes it if it is usable; it returns nil (and no error) when the pair
// must be refreshed before anyone can use it.
func (e *Engine) prime(ctx context.Context) (*cached, error) {
	// A dead neighbour's journaled pair is committed first, also when no
	// refresh would follow (a broken record's holder that exited with its
	// commit pending).
	e.replayOnce(ctx)
	_, rec, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	if c := e.cur.Load(); c != nil {
		return c, nil // published meanwhile
	}
	if rec.Broken != nil && rec.Broken.Generation == rec.Pair.Generation {
		if e.opts.Bootstrap != nil && e.canStore() {
			// The lineage will be healed: wait for it, unless the current
			// pair is still usable (its issuer did not revoke it).
			if e.policy.RejectionRevokesAuthToken || !rec.Pair.ValidFor(e.opts.Clock.Now(), e.opts.MinValidity+slowSlack) {
				return nil, nil
			}
			c := e.schedule(rec.Pair, true)
			c.refreshAt, c.freshUntil = time.Time{}, 0 // heal at once
			e.adopt(c)
			return c, nil
		}
		if _, err := e.servedBroken(rec, false); err != nil {
			return nil, err
		}
		return e.cur.Load(), nil
	}
	c := e.cachedFor(rec.Pair)
	if !rec.Pair.ValidFor(e.opts.Clock.Now(), e.opts.MinValidity+slowSlack) {
		return nil, nil
	}
	e.adopt(c)
	return c, nil
}

// checkLifetime reports a pair that lives no longer than a caller's
// minimum validity, so that no refresh could ever yield a usable one.
func (e *Engine) checkLifetime(p provider.Pair) error {
	if lt, ok := p.Lifetime(); ok && lt <= e.opts.MinValidity+slowSlack+CoarseSlack {
		return &LifetimeError{Key: e.key, Lifetime: lt, MinValidity: e.opts.MinValidity}
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

// start joins the shared refresh in flight or starts one. It runs on the
// starting caller's context without its cancellation (and with a deadline
// of its own), so that no caller's cancellation stops it while trace and
// log values flow.
func (e *Engine) start(ctx context.Context, force bool, gen uint64) *call {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight != nil {
		return e.flight
	}
	cl := &call{done: make(chan struct{})}
	if e.closed {
		cl.err = errors.New("refresh: engine closed")
		close(cl.done)
		return cl
	}
	if !force && e.opts.Clock.Now().Before(e.notBefore) {
		cl.err = fmt.Errorf("refresh: last refresh of %s failed, retrying after %s: %w", e.key, e.notBefore.Format(time.RFC3339), e.lastErr)
		close(cl.done)
		return cl
	}
	e.flight = cl
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.flightTimeout())
	e.flightCancel = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		var forceGen *uint64
		if force {
			forceGen = &gen
		}
		p, err := e.refresh(ctx, forceGen)
		e.mu.Lock()
		e.flight, e.flightCancel, e.holding = nil, nil, false
		if errors.Is(err, errClosed) || (err != nil && e.stopping && !errors.Is(err, provider.ErrLineageBroken)) {
			// Closing cut short a wait (another holder's lease): nothing
			// failed that is worth a retry or a log line.
		} else if err != nil {
			d := e.backoff
			d = d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
			e.notBefore = e.opts.Clock.Now().Add(d)
			e.backoff = min(e.backoff*2, e.opts.MaxRetryBackoff)
			e.lastErr = err
			e.event(EventFailed, slog.String("error", err.Error()), slog.Duration("retry_in", d))
			if c := e.cur.Load(); c != nil && !e.warned && e.opts.Clock.Now().Before(c.usableUntil) {
				// Callers are still served; say so once per failure streak.
				e.warned = true
				e.opts.Logger.Warn("credhelper refresh: refresh failed; serving the current pair while it has the minimum validity left",
					slog.String("key", e.key), slog.Uint64("generation", c.pair.Generation),
					slog.Time("usable_until", c.usableUntil), slog.String("error", err.Error()))
			}
		} else {
			e.backoff = e.opts.RetryBackoff
			e.notBefore = time.Time{}
			e.lastErr = nil
			e.warned = false
		}
		e.mu.Unlock()
		cl.pair, cl.err = p, err
		close(cl.done)
	}()
	return cl
}

// flightTimeout bounds one shared refresh: a wait for another holder's
// lease, two issuer calls (a maybe-delivered one is retried once), and a
// wait for a predecessor's commit.
func (e *Engine) flightTimeout() time.Duration {
	return 3*e.opts.LeaseDuration + 2*e.opts.ClockSkew + 2*e.opts.IssuerTimeout
}

// storeTimeout bounds one commit attempt outside a shared refresh.
func (e *Engine) storeTimeout() time.Duration { return e.opts.LeaseDuration / 2 }

// Close stops background work. A commit that is still pending gets one
// last attempt; its pair stays in the journal for the next start if that
// fails too.
func (e *Engine) Close() error { return e.close(false) }

// CloseNow is Close for a process that must stop (after an interrupt): a
// refresh that holds no claim yet (a wait for another holder's lease, a
// load) is cancelled at once, no issuer call is started any more (a
// maybe-delivered call is not retried; the claim is kept until it
// expires), and only a held claim's work in flight (an issuer call whose
// answer must be journaled, a commit) is waited for; IssuerCallInFlight
// says until when.
func (e *Engine) CloseNow() error { return e.close(true) }

func (e *Engine) close(now bool) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed, e.stopping = true, now
	close(e.stop)
	if now && e.flightCancel != nil && !e.holding {
		// Nothing is claimed: a lease wait or a load may stop at once.
		e.flightCancel()
	}
	e.mu.Unlock()
	e.wg.Wait()
	defer e.releaseClock()
	e.mu.Lock()
	p := e.pending
	e.mu.Unlock()
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), e.storeTimeout())
		defer cancel()
		if _, err := e.commitPending(ctx); err != nil {
			return fmt.Errorf("refresh: commit of generation %d of %s still pending at close (kept in the journal): %w", p.next.Pair.Generation, e.key, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil && e.pending.entry != nil {
		e.pending.entry.release()
	}
	return nil
}

// schedule computes when this instance refreshes a pair and when the pair
// stops being usable. refreshable false (no issuer, a read-only backend, a
// broken lineage) serves the pair until it is no longer usable, then looks
// for one another instance stored.
func (e *Engine) schedule(p provider.Pair, refreshable bool) *cached {
	c := &cached{pair: p}
	if p.Never() {
		c.freshUntil = math.MaxInt64
		c.refreshAt = time.Unix(1<<62, 0)
		c.usableUntil = c.refreshAt
		return c
	}
	c.usableUntil = p.ValidUntil.Add(-e.opts.MinValidity)
	c.refreshAt = c.usableUntil
	if refreshable {
		c.refreshAt = e.refreshTime(p)
	}
	fresh := c.refreshAt
	if hard := c.usableUntil.Add(-CoarseSlack); hard.Before(fresh) {
		fresh = hard
	}
	c.freshUntil = fresh.UnixMilli()
	return c
}

// refreshTime is when this instance refreshes p. The window is a fraction
// of the pair's lifetime, measured from when it was issued (recorded in the
// record, else the JWT iat), with RefreshFloor as its floor; a pair whose
// issue time is unknown gets the floor alone, so that every process
// decides alike. Each instance refreshes at its own point (spread) of the
// window's usable part, the span between the window's start and the point
// where the pair would have less than MinValidity left.
func (e *Engine) refreshTime(p provider.Pair) time.Time {
	window := e.opts.RefreshFloor
	if lifetime, ok := p.Lifetime(); ok {
		window = max(window, time.Duration(e.opts.RefreshFraction*float64(lifetime)))
		// Never refresh in the first half of a pair's life, however large
		// the floor: a pair shorter-lived than the floor would otherwise
		// be born inside its window and refreshed back to back.
		window = min(window, lifetime/2)
	}
	margin := e.opts.MinValidity + 2*CoarseSlack
	window = max(window, margin)
	usable := window - margin
	return p.ValidUntil.Add(-window + time.Duration(e.spread*float64(usable)))
}

// tokenDigest identifies a refresh token in journals and comparisons
// without storing it twice.
func tokenDigest(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// sameLineage reports whether a and b are the same pair.
func sameLineage(a, b provider.Pair) bool {
	return a.Generation == b.Generation && a.AuthToken == b.AuthToken
}

// cachedFor returns the schedule for p: the published one when p is the
// pair already published.
func (e *Engine) cachedFor(p provider.Pair) *cached {
	if c := e.cur.Load(); c != nil && sameLineage(c.pair, p) {
		return c
	}
	return e.schedule(p, e.canRefresh())
}

// canRefresh reports whether this instance may spend refresh tokens: it
// has an issuer, and the backend can store what a refresh returns (or the
// caller opted into refreshing in memory).
func (e *Engine) canRefresh() bool {
	return e.issuer != nil && (!e.readOnly || e.opts.UnsafeRefreshInMemory)
}

// publish makes p the pair callers get.
func (e *Engine) publish(c *cached) {
	if old := e.cur.Swap(c); old == nil || !sameLineage(old.pair, c.pair) {
		defer e.notify()
	}
	secs := math.Inf(1)
	if !c.pair.Never() {
		secs = c.pair.ValidUntil.Sub(e.opts.Clock.Now()).Seconds()
	}
	e.opts.Metrics.SecondsToExpiry(e.key, secs)
}

// event logs and counts one protocol event.
func (e *Engine) event(ev Event, attrs ...slog.Attr) {
	e.opts.Metrics.Count(e.key, ev)
	level := slog.LevelInfo
	switch ev {
	case EventConflict, EventCommitDeferred, EventLeaseLost, EventSpentElsewhere, EventHealed:
		level = slog.LevelWarn
	case EventOrphaned, EventLineageBroken, EventHealFailed:
		level = slog.LevelError
	case EventLeaseWait, EventClaimLost, EventLeaseRenewed:
		level = slog.LevelDebug
	case EventFailed:
		// The caller that needs the pair gets the error itself; a
		// long-running process logs at info to keep the record.
		level = slog.LevelInfo
	}
	attrs = append([]slog.Attr{slog.String("key", e.key), slog.String("holder", e.opts.Holder)}, attrs...)
	e.opts.Logger.LogAttrs(context.Background(), level, "credhelper refresh: "+string(ev), attrs...)
}

// errClosed ends a wait cut short by Close.
var errClosed = errors.New("engine closed")

// sleep waits d with ±20% jitter, or until ctx ends or the engine closes.
func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	d = d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stop:
		return errClosed
	case <-t.C:
		return nil
	}
}
