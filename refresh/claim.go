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

// claim is this instance's lease on one generation while it spends the
// refresh token: the claimed record and its current version. From the
// claim until the pair is journaled, a goroutine renews the lease by
// compare-and-swap every third of LeaseDuration, so that a slow issuer or
// a slow store never lets another instance take a live holder for dead. A
// holder that cannot renew (the store refuses or is unreachable until the
// lease runs out) loses the claim: it presents no token again, but an
// answer to the call in flight is still kept (journaled and committed).
type claim struct {
	pr *protocol

	// callCtx is what issuer calls run on. It does not end when Close
	// cancels the flight, nor when the lease is lost: a claim is carried
	// through, and an answer in flight is kept.
	callCtx        context.Context
	cancel         context.CancelFunc
	cancelDetached context.CancelFunc

	stopOnce sync.Once
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when the renewal goroutine returns

	mu      sync.Mutex // guards the fields below
	rec     *provider.Record
	version provider.Version
	expires time.Time // the lease's expiry by this host's clock
	lost    error     // why the claim was lost, nil while held
}

// hold starts renewing the lease written as rec at version; start is when
// (by the monotonic clock) the claim's compare-and-swap was sent, so the
// lease is taken to run out LeaseDuration after it at the latest.
func (pr *protocol) hold(ctx context.Context, rec *provider.Record, version provider.Version, start time.Time) *claim {
	c := &claim{pr: pr, rec: rec, version: version, expires: start.Add(pr.opts.LeaseDuration), stopped: make(chan struct{}), done: make(chan struct{})}
	ctx, cancelDetached := detached(ctx)
	c.callCtx, c.cancel = context.WithCancel(ctx)
	c.cancelDetached = cancelDetached
	go c.renew(ctx)
	return c
}

// renewEvery is how often a held lease is extended.
func (pr *protocol) renewEvery() time.Duration { return pr.opts.LeaseDuration / 3 }

func (c *claim) renew(ctx context.Context) {
	defer close(c.done)
	pr := c.pr
	due := time.Now().Add(pr.renewEvery()) // renewals are due a third of a lease after the last one started
	for {
		c.mu.Lock()
		deadline := c.expires
		c.mu.Unlock()
		wait := min(time.Until(due), time.Until(deadline))
		if !time.Now().Before(deadline) {
			c.lose(fmt.Errorf("refresh: the lease on %s ran out before it could be renewed", pr.key))
			return
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-c.stopped:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			c.lose(fmt.Errorf("refresh: the lease on %s ran out before it could be renewed", pr.key))
			return
		}
		start := time.Now()
		err := c.extend(ctx, deadline)
		if err != nil && c.recover(ctx, deadline) {
			// An earlier renewal whose answer was lost did land: the lease
			// on the record is still this holder's.
			err = nil
		}
		switch {
		case err == nil:
			due = start.Add(pr.renewEvery())
		case errors.Is(err, provider.ErrConflict):
			c.lose(fmt.Errorf("refresh: the lease on %s was taken over or the record replaced: %w", pr.key, err))
			return
		default:
			// Retry soon, until the lease would run out.
			pr.opts.Logger.Warn("credhelper refresh: could not renew the lease; retrying", slog.String("key", pr.key), slog.String("error", err.Error()))
			due = time.Now().Add(max(pr.renewEvery()/4, 10*time.Millisecond))
		}
	}
}

// extend writes the lease with a new expiry against the current version,
// allowing the store until the current lease runs out (deadline): a slow
// store's write that lands late still counts.
func (c *claim) extend(ctx context.Context, deadline time.Time) error {
	pr := c.pr
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stopped:
		return nil // the holder moved on to its commit
	default:
	}
	r := c.rec.Clone()
	start := time.Now()
	r.Lease.Expires = pr.opts.Clock.Now().Add(pr.opts.LeaseDuration)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	v, err := pr.swap(sctx, c.version, r)
	if err != nil {
		return err
	}
	c.rec, c.version, c.expires = r, v, start.Add(pr.opts.LeaseDuration)
	pr.event(EventLeaseRenewed, slog.Uint64("generation", r.Lease.Generation))
	return nil
}

// recover reloads the record after a renewal failed and, if a renewal of
// this holder's had landed nonetheless (the record changed, and carries
// this holder's lease on the same generation with a later expiry), takes
// it as the claim's own; it reports whether the lease was renewed.
func (c *claim) recover(ctx context.Context, deadline time.Time) bool {
	pr := c.pr
	c.mu.Lock()
	defer c.mu.Unlock()
	lctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	entry, cur, err := pr.load(lctx)
	if err != nil {
		return false
	}
	l, mine := cur.Lease, c.rec.Lease
	if entry.Version == c.version {
		return false // nothing landed: the lease was not renewed
	}
	if l == nil || l.Holder != mine.Holder || l.Generation != mine.Generation || l.Kind != mine.Kind || cur.Pair.Generation != c.rec.Pair.Generation || !l.Expires.After(mine.Expires) {
		return false
	}
	c.rec, c.version = cur, entry.Version
	// The landed renewal set the expiry; by this host's clock it runs no
	// later than a lease from now.
	c.expires = time.Now().Add(min(pr.opts.LeaseDuration, l.Expires.Sub(pr.opts.Clock.Now())))
	return true
}

func (c *claim) lose(err error) {
	c.mu.Lock()
	if c.lost == nil {
		c.lost = err
	}
	c.mu.Unlock()
	// The issuer call in flight is not cancelled: its answer, if it comes,
	// is the lineage's next pair and is journaled and committed (over a
	// taker's claim if need be); only no further presentation is made.
	c.pr.event(EventLeaseLost, slog.String("error", err.Error()))
}

// current returns the claimed record's current version.
func (c *claim) current() provider.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// held returns nil while the claim is held, else why it was lost.
func (c *claim) held() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// stop ends renewal and returns the claimed record's current version,
// which the commit or the release compares against.
func (c *claim) stop() provider.Version {
	c.stopOnce.Do(func() { close(c.stopped) })
	<-c.done
	c.cancel()
	c.cancelDetached()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}
