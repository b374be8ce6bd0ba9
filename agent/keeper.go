package agent

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// Schedule is the refresh window of a profile's engine, so that its keeper
// can sleep until the pair is due instead of polling. The values must be
// the engine's own (refresh.Options RefreshFraction, RefreshFloor and
// MinValidity after defaults); an engine built with Jitter 0 then starts
// refreshing exactly at RefreshAt. An engine with jitter starts earlier,
// which is still correct: the keeper only ever wakes at or after the
// engine's point, never before it, so its call always finds the pair due.
type Schedule struct {
	RefreshFraction float64
	RefreshFloor    time.Duration
	MinValidity     time.Duration
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

// RefreshAt returns when an engine with this schedule and no jitter starts
// refreshing p, which it first saw at firstSeen. It mirrors the engine's
// rule: the window is max(RefreshFloor, RefreshFraction x lifetime), the
// lifetime counted from the token's issued-at time when it states one
// earlier than firstSeen. A never-expiring pair is never due: the zero Time.
func (s Schedule) RefreshAt(p provider.Pair, firstSeen time.Time) time.Time {
	if p.Never() {
		return time.Time{}
	}
	issued := firstSeen
	if info, err := provider.ParseAuthToken(p.AuthToken); err == nil && !info.IssuedAt.IsZero() && info.IssuedAt.Before(p.ValidUntil) && info.IssuedAt.Before(issued) {
		issued = info.IssuedAt
	}
	window := max(s.RefreshFloor, time.Duration(s.RefreshFraction*float64(p.ValidUntil.Sub(issued))))
	return p.ValidUntil.Add(-window)
}

// keep keeps one profile fresh until ctx ends: it loads the pair at once,
// then sleeps until just after the pair's refresh point and calls
// Credential, which serves the still-valid pair and starts the engine's
// shared refresh in the background; it then looks again with a growing
// delay until the new pair appears. A never-expiring pair is loaded once.
func (s *Server) keep(ctx context.Context, prof *served) {
	log := s.opts.Logger.With(slog.String("profile", prof.Name))
	var (
		last      provider.Pair
		firstSeen time.Time
		backoff   = keeperMinBackoff
		poll      = keeperMinPoll
	)
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
			last, firstSeen, poll = p, now, keeperMinPoll
			log.Info("agent: credential ready", slog.Any("pair", p))
		}
		s.observe(prof, p)
		if p.Never() {
			prof.scheduled(time.Time{})
			<-ctx.Done()
			return
		}
		var wait time.Duration
		if at := prof.Schedule.RefreshAt(p, firstSeen).Add(wakeSlack); at.After(now) {
			wait = at.Sub(now)
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
