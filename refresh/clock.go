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
// goroutine per process, shared by every engine: it starts with the first
// engine that uses it and stops when the last one closes, so a program
// (or a test checking for leaked goroutines) that closes its engines keeps
// no ticker behind.
type SystemClock struct{}

// coarse is process-wide by design: one ticker serves any number of
// engines, so an agent with a thousand profiles wakes five times a second,
// not five thousand. users counts the engines holding it; mu guards users
// and stop.
var coarse struct {
	mu    sync.Mutex
	users int
	stop  chan struct{}
	ms    atomic.Int64
}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Coarse returns the process-wide coarse clock. It is kept current while
// at least one engine holds it (acquireCoarse); read without a holder it
// is only as fresh as the last tick.
func (SystemClock) Coarse() *atomic.Int64 {
	if coarse.ms.Load() == 0 {
		coarse.ms.CompareAndSwap(0, time.Now().UnixMilli())
	}
	return &coarse.ms
}

// acquireCoarse starts the ticker for its first holder; the returned
// function releases the hold and stops the ticker with the last one.
func acquireCoarse() (release func()) {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	coarse.users++
	if coarse.users == 1 {
		coarse.ms.Store(time.Now().UnixMilli())
		stop := make(chan struct{})
		coarse.stop = stop
		go func() {
			t := time.NewTicker(CoarseTick)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					coarse.ms.Store(time.Now().UnixMilli())
				}
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			coarse.mu.Lock()
			defer coarse.mu.Unlock()
			coarse.users--
			if coarse.users == 0 {
				close(coarse.stop)
				coarse.stop = nil
			}
		})
	}
}
