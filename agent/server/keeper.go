package server

import (
	"context"
	"log/slog"
	"math/rand/v2"
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

// wakeSlack is how long after the refresh point the keeper calls the
// engine: past the coarse clock's lag, so the call takes the slow path that
// starts the refresh.
const wakeSlack = refresh.CoarseTick + 50*time.Millisecond

// Keeper backoff bounds: after a failed call, and while a started refresh
// has not yet produced a new pair.
const (
	keeperMinBackoff = time.Second
	keeperMaxBackoff = time.Minute
	keeperMinPoll    = 50 * time.Millisecond
	keeperMaxPoll    = 5 * time.Second
)

// keep keeps one profile fresh until ctx ends: it loads the pair at once,
// then sleeps until just after the pair's refresh point (from Scheduler;
// a provider without one is looked at with a growing delay) and calls
// Credential, which serves the still-valid pair and starts the engine's
// shared refresh in the background; it then looks again with a growing
// delay until the new pair appears. A never-expiring pair is loaded once.
func (s *Server) keep(ctx context.Context, prof *served) {
	log := s.opts.Logger.With(slog.String("profile", prof.Name))
	var (
		last    provider.Pair
		backoff = keeperMinBackoff
		poll    = keeperMinPoll
	)
	sched, _ := prof.Provider.(Scheduler)
	for {
		cctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		p, err := prof.Provider.Credential(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err != nil {
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, keeperMaxBackoff)
			prof.failed(err, now.Add(wait))
			log.Warn("agent: keeping the credential fresh failed", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		backoff = keeperMinBackoff
		if !samePair(p, last) {
			last, poll = p, keeperMinPoll
			log.Info("agent: credential ready", slog.Any("pair", p))
		}
		s.observe(prof, p)
		if p.Never() {
			prof.scheduled(time.Time{})
			<-ctx.Done()
			return
		}
		var at time.Time
		if sched != nil {
			at = sched.NextRefresh()
		}
		var wait time.Duration
		if !at.IsZero() && at.Add(wakeSlack).After(now) {
			wait = at.Add(wakeSlack).Sub(now)
		} else {
			// Due: the engine is refreshing in the background (or backing
			// off after a failure). Look again soon, then less often.
			wait, poll = poll, min(2*poll, keeperMaxPoll)
		}
		prof.scheduled(now.Add(wait))
		log.Debug("agent: next look", slog.Duration("in", wait))
		if !sleep(ctx, wait) {
			return
		}
	}
}

// samePair reports whether a and b are the same pair of one lineage.
func samePair(a, b provider.Pair) bool {
	return a.Generation == b.Generation && a.AuthToken == b.AuthToken
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
