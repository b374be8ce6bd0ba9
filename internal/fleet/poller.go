package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Poller loads the stored record at an interval while a fleet runs and
// checks I5 where it matters most, at the store: the stored generation
// never decreases. It also yields a store-side timeline of generations.
type Poller struct {
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // guards the fields below
	timeline []GenEvent
	regress  []string
	loadErrs int
}

// Poll starts a Poller on key of b, loading every interval.
func Poll(b provider.Backend, key string, every time.Duration) *Poller {
	p := &Poller{stop: make(chan struct{}), done: make(chan struct{})}
	go p.run(b, key, every)
	return p
}

func (p *Poller) run(b provider.Backend, key string, every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64
	have, stopping := false, false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, err := b.Load(ctx, key)
		cancel()
		at := time.Now()
		var rec *provider.Record
		if err == nil {
			rec, err = provider.DecodeRecord(e.Value)
		}
		p.mu.Lock()
		switch {
		case err != nil:
			p.loadErrs++
		case have && rec.Pair.Generation < last:
			p.regress = append(p.regress, fmt.Sprintf("stored generation went from %d down to %d at %s", last, rec.Pair.Generation, at.Format(time.StampMilli)))
		case !have || rec.Pair.Generation > last:
			p.timeline = append(p.timeline, GenEvent{At: at, Generation: rec.Pair.Generation, Process: -1})
		}
		if err == nil {
			last, have = rec.Pair.Generation, true
		}
		p.mu.Unlock()
		if stopping {
			return
		}
		select {
		case <-p.stop:
			stopping = true // one last load: a commit just before Stop counts
		case <-t.C:
		}
	}
}

// Stop ends polling and returns the store's timeline (the first time each
// generation was seen stored), any regressions, and how many loads failed.
func (p *Poller) Stop() (timeline []GenEvent, regressions []string, loadErrors int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.timeline, p.regress, p.loadErrs
}
