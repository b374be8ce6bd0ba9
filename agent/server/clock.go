package server

import (
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/refresh"
)

// Clock is a refresh.Clock for the engines of an agent's profiles. Its
// coarse reading is not advanced by a ticker, as refresh.SystemClock's is
// five times a second, but by the server itself just before each call it
// makes to a provider (a request, a keeper's step): the engines' hot path
// then judges freshness against a reading taken microseconds earlier, and
// an idle agent has no periodic wake-up at all. Give every engine the
// server serves the same Clock, and the server the Clock (Options.Clock);
// an engine used by anything else must keep refresh.SystemClock.
type Clock struct {
	ms atomic.Int64
}

var _ refresh.Clock = (*Clock)(nil)

// NewClock returns a Clock reading now.
func NewClock() *Clock {
	c := &Clock{}
	c.tick()
	return c
}

// Now returns time.Now().
func (c *Clock) Now() time.Time { return time.Now() }

// Coarse returns the reading the server advances before each call.
func (c *Clock) Coarse() *atomic.Int64 { return &c.ms }

// tick advances the coarse reading to now; readings never go back.
func (c *Clock) tick() {
	now := time.Now().UnixMilli()
	for {
		old := c.ms.Load()
		if old >= now || c.ms.CompareAndSwap(old, now) {
			return
		}
	}
}
