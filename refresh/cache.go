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
//
// Engine is the cache, step 1 of the protocol: it serves the published
// pair while it is fresh, runs one shared refresh when it is due, backs
// off after a failure and serves the last good pair while it is usable.
// The refresh itself, steps 2 to 8, is the protocol it wraps
// (protocol.go), which changes what the cache serves only through the
// methods of cacheSeam below; for a read-only backend refreshed in memory
// it wraps that chain instead (memory.go).
type Engine struct {
	key    string
	opts   Options
	spread float64 // this instance's point in the usable window, fixed at New
	// refreshable: this instance may spend refresh tokens (an issuer, and
	// a store for the result or UnsafeRefreshInMemory).
	refreshable bool

	p         *protocol // steps 2 to 8
	refresher refresher // what the shared refresh runs: p, or the in-memory chain

	// cur is the published pair; the hot path reads only this and the
	// coarse clock.
	cur    atomic.Pointer[cached]
	coarse *atomic.Int64 // Options.Clock.Coarse(), read on the hot path
	// changed is closed, and replaced, when a different pair is published.
	changed atomic.Pointer[chan struct{}]
	// releaseClock lets go of the shared coarse ticker at Close.
	releaseClock func()

	mu           sync.Mutex         // guards the fields below
	flight       *call              // the shared refresh in progress, or nil
	flightCancel context.CancelFunc // cancels flight before it holds a claim
	holding      bool               // flight holds a claim: Close must wait
	stopping     bool               // CloseNow was called
	notBefore    time.Time          // no new refresh before this, after a failure
	backoff      time.Duration      // the next failure's delay
	lastErr      error              // why the last refresh failed
	warned       bool               // a failure while serving a usable pair was logged
	closed       bool
	wg           sync.WaitGroup // shared refreshes in flight
}

// refresher runs one shared refresh: steps 2 to 8 until there is a pair
// to publish (forceGen, when set, demands a generation newer than
// *forceGen).
type refresher interface {
	refresh(ctx context.Context, forceGen *uint64) (provider.Pair, error)
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
		key:     key,
		opts:    o,
		spread:  nextSpread() * o.Jitter,
		backoff: o.RetryBackoff,
		coarse:  o.Clock.Coarse(),
	}
	e.p = newProtocol(backend, issuer, key, &e.opts, e)
	e.refreshable = e.p.canRefresh()
	e.refresher = e.p
	if e.p.inMemory() {
		e.refresher = &inMemory{pr: e.p}
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
	return c != nil && !c.pair.Never() && e.refreshable && !e.opts.Clock.Now().Before(c.refreshAt)
}

// IssuerCallInFlight reports whether an issuer call (or a bootstrap) that
// may be answered with a new pair is in flight, or answered but not yet
// journaled, and until when it may run. A process that must stop (after
// an interrupt) waits for such a call, so the pair it may bring is not
// lost; anything else Close cancels at once.
func (e *Engine) IssuerCallInFlight() (deadline time.Time, ok bool) {
	return e.p.issuingUntil()
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
		if err := e.p.checkLifetime(cl.pair); err != nil {
			return provider.Pair{}, err
		}
		return provider.Pair{}, fmt.Errorf("refresh: the pair for %s has less than %v left: %w", e.key, e.opts.MinValidity, provider.ErrExpired)
	}
	return cl.pair, nil
}

// prime loads the stored pair for a caller that finds nothing cached and
// publishes it if it is usable (the protocol's step 2 for a cold caller);
// it returns nil (and no error) when the pair must be refreshed before
// anyone can use it.
func (e *Engine) prime(ctx context.Context) (*cached, error) {
	ok, err := e.p.prime(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return e.cur.Load(), nil
}

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
		p, err := e.refresher.refresh(ctx, forceGen)
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
			// Each failure is counted; a retry that fails the same way
			// as the last one is logged at debug, so a silent issuer
			// leaves one line per streak, not one a minute for hours.
			level := slog.LevelInfo
			if e.lastErr != nil && e.lastErr.Error() == err.Error() {
				level = slog.LevelDebug
			}
			e.lastErr = err
			e.opts.eventAt(level, e.key, EventFailed, slog.String("error", err.Error()), slog.Duration("retry_in", d))
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
	e.p.shut(now)
	if now && e.flightCancel != nil && !e.holding {
		// Nothing is claimed: a lease wait or a load may stop at once.
		e.flightCancel()
	}
	e.mu.Unlock()
	e.wg.Wait()
	defer e.releaseClock()
	return e.p.finish()
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

// SameLineage reports whether a and b are the same pair of one lineage
// (same generation and auth token): whether a holder of a must take up b.
// The engine publishes, and notifies Changed, only when this is false; a
// holder such as the agent compares the pairs it writes out with it.
func SameLineage(a, b provider.Pair) bool {
	return a.Generation == b.Generation && a.AuthToken == b.AuthToken
}

// cachedFor returns the schedule for p: the published one when p is the
// pair already published.
func (e *Engine) cachedFor(p provider.Pair) *cached {
	if c := e.cur.Load(); c != nil && SameLineage(c.pair, p) {
		return c
	}
	return e.schedule(p, e.refreshable)
}

// publish makes p the pair callers get.
func (e *Engine) publish(c *cached) {
	if old := e.cur.Swap(c); old == nil || !SameLineage(old.pair, c.pair) {
		defer e.notify()
	}
	secs := math.Inf(1)
	if !c.pair.Never() {
		secs = c.pair.ValidUntil.Sub(e.opts.Clock.Now()).Seconds()
	}
	e.opts.Metrics.SecondsToExpiry(e.key, secs)
}

// The seam: the protocol changes what callers are served only through
// these (cacheSeam, protocol.go).

func (e *Engine) served() (provider.Pair, bool) {
	if c := e.cur.Load(); c != nil {
		return c.pair, true
	}
	return provider.Pair{}, false
}

func (e *Engine) refreshAt(p provider.Pair) time.Time { return e.cachedFor(p).refreshAt }

func (e *Engine) serve(p provider.Pair) { e.publish(e.cachedFor(p)) }

func (e *Engine) serveRefreshed(p provider.Pair) { e.publish(e.schedule(p, true)) }

func (e *Engine) serveUnrefreshable(p provider.Pair) {
	c := e.schedule(p, false)
	if old := e.cur.Load(); old == nil || !SameLineage(old.pair, p) || old.refreshAt != c.refreshAt {
		e.publish(c)
	}
}

func (e *Engine) serveDueNow(p provider.Pair) {
	c := e.schedule(p, true)
	c.refreshAt, c.freshUntil = time.Time{}, 0
	e.publish(c)
}

func (e *Engine) unserve(p provider.Pair) {
	if c := e.cur.Load(); c != nil && SameLineage(c.pair, p) && e.cur.CompareAndSwap(c, nil) {
		e.notify()
	}
}

func (e *Engine) claimed() {
	e.mu.Lock()
	e.holding = true
	e.mu.Unlock()
}

func (e *Engine) firstWarning() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	warn := !e.warned
	e.warned = true
	return warn
}

// event logs and counts one protocol event on key.
func (o *Options) event(key string, ev Event, attrs ...slog.Attr) {
	o.eventAt(eventLevel(ev), key, ev, attrs...)
}

// eventAt is event logged at level.
func (o *Options) eventAt(level slog.Level, key string, ev Event, attrs ...slog.Attr) {
	o.Metrics.Count(key, ev)
	attrs = append([]slog.Attr{slog.String("key", key), slog.String("holder", o.Holder)}, attrs...)
	o.Logger.LogAttrs(context.Background(), level, "credhelper refresh: "+string(ev), attrs...)
}

// eventLevel is the level an event is logged at.
func eventLevel(ev Event) slog.Level {
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
	return level
}
