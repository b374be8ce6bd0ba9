package refresh

import (
	"sync"
	"sync/atomic"
	"time"
)

// CoarseTick is how often the process-wide coarse clock is updated.
const CoarseTick = 200 * time.Millisecond

// CoarseSlack is how much earlier than strictly needed a cached pair stops
// being served, covering the coarse clock's lag (see the package doc).
const CoarseSlack = time.Second

// Clock tells time. Tests inject a fake one.
type Clock interface {
	// Now returns the current wall-clock time.
	Now() time.Time
	// Coarse returns a value of Unix milliseconds that the clock keeps no
	// more than CoarseTick plus scheduling delay behind Now. The engine
	// keeps the pointer and reads it with one atomic load on every cached
	// Credential call.
	Coarse() *atomic.Int64
}

// SystemClock is the real clock. Its coarse reading comes from one ticker
// goroutine per process, started on first use and shared by every engine.
type SystemClock struct{}

// coarse is process-wide by design: one ticker serves any number of
// engines, so an agent with a thousand profiles wakes five times a second,
// not five thousand.
var coarse struct {
	once sync.Once
	ms   atomic.Int64
}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Coarse returns the process-wide coarse clock, starting it on first use.
func (SystemClock) Coarse() *atomic.Int64 {
	coarse.once.Do(startCoarse)
	return &coarse.ms
}

func startCoarse() {
	coarse.ms.Store(time.Now().UnixMilli())
	go func() {
		t := time.NewTicker(CoarseTick)
		for range t.C {
			coarse.ms.Store(time.Now().UnixMilli())
		}
	}()
}
