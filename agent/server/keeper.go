package server

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// Scheduler is implemented by providers that know when their pair is next
// due for refresh; *refresh.Engine does. A keeper sleeps until that point
// instead of polling.
type Scheduler interface {
	NextRefresh() time.Time
}

// ChangeNotifier is implemented by providers that announce a new pair:
// the channel Changed returns is closed when the provider next has a
// different pair; *refresh.Engine does. While a refresh it started runs, a
// keeper waits on it instead of looking again and again; a provider
// without it (a test double, a wrapper) is looked at on a backoff
// (keeperMinPoll to keeperMaxPoll), or woken by Server.Notify.
type ChangeNotifier interface {
	Changed() <-chan struct{}
}

var (
	_ Scheduler      = (*refresh.Engine)(nil)
	_ ChangeNotifier = (*refresh.Engine)(nil)
)

// wakeSlack is how long after the refresh point the keeper calls the
// engine: past the coarse clock's lag, so the call takes the slow path that
// starts the refresh.
const wakeSlack = refresh.CoarseTick + 50*time.Millisecond

// sinkSlack is how long before a pair drops below its minimum validity its
// sink files are emptied: the engine itself stops handing the pair out that
// long before (refresh.CoarseSlack), and a timer may fire late.
const sinkSlack = refresh.CoarseSlack

// Keeper backoff bounds: after a failed call or sink write, and while a
// started refresh has not yet produced a new pair: a provider without
// Changed is looked at from keeperMinPoll to keeperMaxPoll, one with it
// every keeperDueLook, in case the refresh ended without a pair (failed,
// or backing off) and must be started again.
const (
	keeperMinBackoff = time.Second
	keeperMaxBackoff = time.Minute
	keeperMinPoll    = 250 * time.Millisecond
	keeperMaxPoll    = 5 * time.Second
	keeperDueLook    = keeperMaxPoll
	// kickHold is how long a keeper keeps its refresh slot without hearing
	// that the refresh ended (an engine backing off starts none).
	kickHold = 5 * time.Second
)

// keeper keeps one profile fresh and its sinks written. It holds no
// goroutine while it waits for the refresh point: a timer set from
// Scheduler puts it on the server's worker pool, which runs at most one
// step of a keeper at a time. Once a refresh it started runs, the
// provider's Changed (ChangeNotifier) wakes it when the new pair is
// published, through one short-lived goroutine (watch) that ends with the
// refresh; Server.Notify wakes it too.
type keeper struct {
	s       *Server
	prof    *served
	sched   Scheduler      // nil: the provider does not say when it is due
	changes ChangeNotifier // nil: the provider does not announce a new pair
	sinks   []*sink
	quit    chan struct{} // closed by stop: a watch ends

	mu       sync.Mutex // guards the fields below
	idle     *sync.Cond // signalled when running ends
	timer    *time.Timer
	started  bool
	stopped  bool
	queued   bool // on the pool's queue
	running  bool // a step is running
	again    bool // woken while running: step once more
	firstRun chan struct{}
	watching <-chan struct{} // the Changed channel a watch waits on; nil: none

	// holding: this keeper started a refresh and holds one of the server's
	// refresh slots until the engine publishes or fails (endKick).
	holding atomic.Bool
	// Guarded by Server.kickMu.
	waiting, granted bool

	// Touched only by step, which never runs twice at once.
	kickedAt    time.Time
	last        provider.Pair
	have        bool
	backoff     time.Duration
	failing     string // the last failure's message, until a success
	poll        time.Duration
	sinkBackoff time.Duration
}

func newKeeper(s *Server, prof *served, sinks []*sink) *keeper {
	k := &keeper{
		s: s, prof: prof, sinks: sinks,
		firstRun:    make(chan struct{}),
		quit:        make(chan struct{}),
		backoff:     keeperMinBackoff,
		poll:        keeperMinPoll,
		sinkBackoff: keeperMinBackoff,
	}
	k.idle = sync.NewCond(&k.mu)
	k.sched, _ = prof.Provider.(Scheduler)
	k.changes, _ = prof.Provider.(ChangeNotifier)
	return k
}

// start queues the keeper's first step (once).
func (k *keeper) start() {
	k.mu.Lock()
	first := !k.started
	k.started = true
	k.mu.Unlock()
	if first {
		k.wake()
	}
}

// wake queues a step now. A wake while a step runs makes that step run
// once more, so a pair published during a step is never missed.
func (k *keeper) wake() {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.stopped || !k.started:
	case k.running:
		k.again = true
	case !k.queued:
		k.queued = true
		k.s.pool.submit(k)
	}
}

// run is called by a pool worker.
func (k *keeper) run() {
	k.mu.Lock()
	k.queued = false
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.running = true
	k.mu.Unlock()

	next := k.step()

	k.mu.Lock()
	defer k.mu.Unlock()
	k.running = false
	k.idle.Broadcast()
	select {
	case <-k.firstRun:
	default:
		close(k.firstRun)
	}
	switch {
	case k.stopped:
	case k.again:
		k.again = false
		k.queued = true
		k.s.pool.submit(k)
	case next > 0:
		if k.timer == nil {
			k.timer = time.AfterFunc(next, k.wake)
		} else {
			k.timer.Reset(next)
		}
	}
}

// stop stops the keeper and waits for a step in progress to end.
func (k *keeper) stop() {
	k.mu.Lock()
	if !k.stopped {
		close(k.quit)
	}
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
	}
	for k.running {
		k.idle.Wait()
	}
	k.mu.Unlock()
	k.s.dropKick(k)
}

// endKick gives back the refresh slot the keeper holds, if any.
func (k *keeper) endKick() {
	if k.holding.CompareAndSwap(true, false) {
		k.s.releaseKick()
	}
}

func (k *keeper) isStopped() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopped
}

// expireAll empties or removes the sinks of a stopped keeper whose profile
// is no longer served, except those whose path is in keep (the new
// configuration still has them).
func (k *keeper) expireAll(keep map[string]bool) {
	for _, sk := range k.sinks {
		if !keep[sk.spec.Path] {
			k.expire(sk, slog.LevelInfo, "the profile is no longer served")
		}
	}
}

// step resolves the pair once, writes the sinks if it changed, empties
// sinks whose pair fell below the minimum validity, and returns when to
// look next (0: only when woken).
func (k *keeper) step() time.Duration {
	prof := k.prof
	now := time.Now()
	if k.holding.Load() && now.Sub(k.kickedAt) > kickHold {
		k.endKick()
	}
	// The call below starts the engine's refresh when the pair is due. At
	// most Options.Workers refreshes started by keepers run at once: a
	// round of pairs minted together then neither floods the issuer nor
	// holds a connection per profile in memory. A keeper over the budget
	// waits for a slot (releaseKick wakes it), emptying its sinks on time
	// meanwhile; callers are served the still-valid pair throughout.
	// The first call counts as due: a cold engine may start a refresh of a
	// stored pair that is already in its window.
	due := !k.holding.Load() && (!k.have || k.isDue(now))
	switch {
	case k.holding.Load():
	case !due:
		k.s.returnGrant(k) // handed a slot it no longer needs
	case !k.s.acquireKick(k):
		k.expireDue(now)
		wait := k.sooner(kickHold, now)
		prof.scheduled(now.Add(wait))
		return wait
	default:
		k.holding.Store(true)
		k.kickedAt = now
	}
	// Taken before the call, so that a pair published after it is not
	// missed.
	var changed <-chan struct{}
	if k.changes != nil {
		changed = k.changes.Changed()
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.s.opts.RequestTimeout)
	k.s.tick()
	p, err := prof.Provider.Credential(ctx)
	cancel()
	now = time.Now()
	if err != nil {
		k.endKick()
		if errors.Is(err, provider.ErrExpired) || errors.Is(err, provider.ErrLineageBroken) {
			// Only a person (put, generate) or a bootstrap mends it: look
			// for that at the slowest pace.
			k.backoff = keeperMaxBackoff
		}
		wait := k.backoff/2 + rand.N(k.backoff/2+1)
		k.backoff = min(2*k.backoff, keeperMaxBackoff)
		prof.failed(err, now.Add(wait))
		// The same failure again is logged at debug level only: the first
		// one said it, and status and metrics keep saying it.
		level := slog.LevelWarn
		if msg := err.Error(); msg == k.failing {
			level = slog.LevelDebug
		} else {
			k.failing = msg
		}
		k.logAt(level, "agent: keeping the credential fresh failed", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		k.expireDue(now)
		return k.sooner(wait, now)
	}
	k.backoff = keeperMinBackoff
	if k.failing != "" {
		k.failing = ""
		k.logAt(slog.LevelInfo, "agent: the credential is fresh again")
	}
	if !k.have || !refresh.SameLineage(p, k.last) {
		if k.have {
			k.endKick() // the refresh this keeper started has landed
		}
		k.last, k.have, k.poll = p, true, keeperMinPoll
		k.logAt(slog.LevelInfo, "agent: credential ready", slog.Any("pair", p))
	}
	k.s.observe(prof, p)
	retry := k.writeSinks(p, now)
	k.expireDue(now)
	if !k.isDue(now) {
		k.endKick() // nothing of ours is in flight
	}
	if p.Never() {
		prof.scheduled(time.Time{})
		return retry
	}
	var at time.Time
	if k.sched != nil {
		at = k.sched.NextRefresh()
	}
	var wait time.Duration
	switch {
	case !at.IsZero() && at.Add(wakeSlack).After(now):
		wait = at.Add(wakeSlack).Sub(now)
	case changed != nil:
		// Due: the engine is refreshing in the background (or backing off
		// after a failure, or waiting for another instance's commit). Its
		// publication wakes us; look again now and then in case the
		// refresh ended without a pair.
		k.watch(changed)
		wait = keeperDueLook
	default:
		// Due, and the provider does not announce a new pair: look again,
		// less and less often.
		wait, k.poll = k.poll, min(2*k.poll, keeperMaxPoll)
	}
	if retry > 0 {
		wait = min(wait, retry)
	}
	wait = k.sooner(wait, now)
	prof.scheduled(now.Add(wait))
	return wait
}

// watch wakes the keeper when ch, a Changed channel, is closed, unless
// the keeper stops first. One goroutine waits per channel: the channel is
// closed when the next pair is published, which ends the watch.
func (k *keeper) watch(ch <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.watching == ch {
		return
	}
	k.watching = ch
	go func() {
		select {
		case <-ch:
		case <-k.quit:
			return
		}
		k.mu.Lock()
		if k.watching == ch {
			k.watching = nil
		}
		k.mu.Unlock()
		k.wake()
	}()
}

// isDue reports whether the provider says its pair is in its refresh window
// (a refresh runs or should); false for a provider that does not say.
func (k *keeper) isDue(now time.Time) bool {
	if k.sched == nil || (k.have && k.last.Never()) {
		return false
	}
	at := k.sched.NextRefresh()
	return !at.IsZero() && !now.Before(at)
}

// sooner shortens wait so that the keeper wakes when a sink's pair is due
// to be emptied.
func (k *keeper) sooner(wait time.Duration, now time.Time) time.Duration {
	for _, sk := range k.sinks {
		if d, ok := k.sinkDeadline(sk); ok {
			wait = min(wait, max(d.Sub(now), time.Millisecond))
		}
	}
	return wait
}

// sinkDeadline is when sk's pair must leave the file.
func (k *keeper) sinkDeadline(sk *sink) (time.Time, bool) {
	if !sk.written || sk.wrote.Never() {
		return time.Time{}, false
	}
	return sk.wrote.ValidUntil.Add(-k.prof.MinValidity - sinkSlack), true
}

// writeSinks writes p to every sink that does not hold it yet; it returns
// the delay before retrying failed writes, 0 if none failed.
func (k *keeper) writeSinks(p provider.Pair, now time.Time) time.Duration {
	if len(k.sinks) == 0 {
		return 0
	}
	if !p.Never() && !now.Before(p.ValidUntil.Add(-k.prof.MinValidity-sinkSlack)) {
		return 0 // too close to its end to hand out; expireDue empties the sinks
	}
	data := sinkData(k.prof.Name, p)
	failed := false
	for _, sk := range k.sinks {
		if sk.written && !sk.failed && refresh.SameLineage(sk.wrote, p) {
			continue
		}
		if err := k.writeOne(sk, data); err != nil {
			failed = true
			sk.failed = true
			k.logAt(slog.LevelWarn, "agent: sink write failed; retrying", slog.String("sink", sk.spec.Path), slog.String("error", err.Error()),
				slog.Duration("retry_in", k.sinkBackoff))
			k.count(sinkWriteFailures)
			continue
		}
		sk.wrote, sk.written, sk.failed = p, true, false
		k.count(sinkWrites)
		k.logAt(slog.LevelInfo, "agent: sink written", slog.String("sink", sk.spec.Path), slog.Uint64("generation", p.Generation))
		sk.runCommand(k.prof.Name, k.s.opts.Logger.With(slog.String("profile", k.prof.Name)), k.s.opts.Metrics)
	}
	if !failed {
		k.sinkBackoff = keeperMinBackoff
		return 0
	}
	wait := k.sinkBackoff
	k.sinkBackoff = min(2*k.sinkBackoff, keeperMaxBackoff)
	return wait
}

func (k *keeper) writeOne(sk *sink, data SinkData) error {
	b, err := sk.render(data)
	if err != nil {
		return err
	}
	return writeAtomic(sk.spec.Path, b, sk.spec.Mode)
}

// expireDue empties (or removes) every sink whose pair is at its deadline.
func (k *keeper) expireDue(now time.Time) {
	for _, sk := range k.sinks {
		if d, ok := k.sinkDeadline(sk); ok && !now.Before(d) {
			k.expire(sk, slog.LevelError, "the pair fell below min_validity and no newer pair replaced it")
		}
	}
}

// expire empties or removes one sink's file.
func (k *keeper) expire(sk *sink, level slog.Level, why string) {
	if !sk.written {
		return
	}
	var err error
	action := "emptied"
	if sk.spec.Remove {
		action = "removed"
		err = removeSink(sk.spec.Path)
	} else {
		err = writeAtomic(sk.spec.Path, nil, sk.spec.Mode)
	}
	if err != nil {
		k.logAt(slog.LevelError, "agent: could not empty an expiring sink", slog.String("sink", sk.spec.Path), slog.String("reason", why), slog.String("error", err.Error()))
		k.count(sinkWriteFailures)
		return
	}
	sk.wrote, sk.written = provider.Pair{}, false
	k.count(sinkExpired)
	k.logAt(level, "agent: sink "+action, slog.String("sink", sk.spec.Path), slog.String("reason", why))
}

// logAt logs with the profile's name; a keeper holds no logger of its own
// (slog's With copies the handler's state, a few hundred bytes a profile).
func (k *keeper) logAt(level slog.Level, msg string, attrs ...slog.Attr) {
	k.s.opts.Logger.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("profile", k.prof.Name)}, attrs...)...)
}

func (k *keeper) count(what string) {
	if m := k.s.opts.Metrics; m != nil {
		m.sinkCount(k.prof.Name, what)
	}
}

// pool runs keeper steps on at most max goroutines, started on demand
// and gone when the queue is empty: an idle agent holds none.
type pool struct {
	max int

	mu      sync.Mutex // guards the fields below
	queue   []*keeper
	workers int
}

func (p *pool) submit(k *keeper) {
	p.mu.Lock()
	p.queue = append(p.queue, k)
	if p.workers < p.max {
		p.workers++
		go p.work()
	}
	p.mu.Unlock()
}

func (p *pool) work() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.workers--
			p.queue = nil // let a burst's backing array go
			p.mu.Unlock()
			return
		}
		k := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		k.run()
	}
}

// acquireKick takes a refresh slot for k, or queues k for the next free one
// and reports false.
func (s *Server) acquireKick(k *keeper) bool {
	s.kickMu.Lock()
	defer s.kickMu.Unlock()
	switch {
	case k.granted:
		k.granted = false
		return true
	case s.kicks < s.opts.Workers:
		s.kicks++
		return true
	}
	if !k.waiting {
		k.waiting = true
		s.kickWait = append(s.kickWait, k)
	}
	return false
}

// returnGrant gives back a slot handed to k that it did not use.
func (s *Server) returnGrant(k *keeper) {
	s.kickMu.Lock()
	granted := k.granted
	k.granted = false
	s.kickMu.Unlock()
	if granted {
		s.releaseKick()
	}
}

// releaseKick hands a slot to the first keeper waiting for one, or frees
// it.
func (s *Server) releaseKick() {
	s.kickMu.Lock()
	for len(s.kickWait) > 0 {
		w := s.kickWait[0]
		s.kickWait[0] = nil
		s.kickWait = s.kickWait[1:]
		w.waiting = false
		if w.isStopped() {
			continue
		}
		w.granted = true
		s.kickMu.Unlock()
		w.wake()
		return
	}
	s.kickWait = nil
	s.kicks--
	idle := s.kicks == 0
	s.kickMu.Unlock()
	if idle {
		s.settleSoon()
	}
}

// settleSoon schedules Options.Settled for when the keepers' refreshes
// have been idle for settleDelay, and settleEvery after the last call.
func (s *Server) settleSoon() {
	if s.opts.Settled == nil {
		return
	}
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	if s.settleOff {
		return
	}
	if s.settleTimer != nil {
		s.settleTimer.Stop()
	}
	delay := max(settleDelay, time.Until(s.settledAt.Add(settleEvery)))
	s.settleTimer = time.AfterFunc(delay, func() {
		s.kickMu.Lock()
		busy := s.kicks > 0
		s.kickMu.Unlock()
		if busy {
			return // a new round runs; its end schedules again
		}
		s.settleMu.Lock()
		off := s.settleOff
		s.settledAt = time.Now()
		s.settleMu.Unlock()
		if !off {
			s.opts.Settled()
		}
	})
}

// stopSettle cancels a pending Settled call for good.
func (s *Server) stopSettle() {
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	s.settleOff = true
	if s.settleTimer != nil {
		s.settleTimer.Stop()
	}
}

// dropKick takes a stopped keeper out of the queue and gives back what it
// held.
func (s *Server) dropKick(k *keeper) {
	s.kickMu.Lock()
	if k.waiting {
		k.waiting = false
		for i, w := range s.kickWait {
			if w == k {
				s.kickWait = append(s.kickWait[:i], s.kickWait[i+1:]...)
				break
			}
		}
	}
	s.kickMu.Unlock()
	s.returnGrant(k)
	k.endKick()
}
