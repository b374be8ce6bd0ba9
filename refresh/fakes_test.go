package refresh

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// fakeClock is a settable clock; its coarse reading is exact.
type fakeClock struct{ ns, ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c.ms.Store(c.ns.Load() / 1e6)
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Coarse() *atomic.Int64   { return &c.ms }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Store(c.ns.Add(int64(d)) / 1e6) }

// memBackend is an in-memory Backend that also checks invariant I5: no
// write may lower the stored generation.
type memBackend struct {
	t  testing.TB
	mu sync.Mutex
	m  map[string]memEntry
	n  int

	// hooks for fault injection; each may return an error to fail the call
	loadErr func() error
	casErr  func(value []byte) error
	// ackLost, when it returns true, lets a swap land and then fails it,
	// as a store whose answer was lost.
	ackLost func(value []byte) bool
	ro      bool
}

type memEntry struct {
	v   []byte
	ver provider.Version
}

func newMem(t testing.TB) *memBackend { return &memBackend{t: t, m: map[string]memEntry{}} }

func (b *memBackend) Load(ctx context.Context, key string) (provider.Entry, error) {
	b.mu.Lock()
	hook := b.loadErr
	b.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return provider.Entry{}, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok {
		return provider.Entry{}, provider.ErrNotFound
	}
	return provider.Entry{Value: append([]byte(nil), e.v...), Version: e.ver}, nil
}

func (b *memBackend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, v []byte) (provider.Version, error) {
	if b.ro {
		return "", provider.ErrReadOnly
	}
	b.mu.Lock()
	hook := b.casErr
	b.mu.Unlock()
	if hook != nil {
		if err := hook(v); err != nil {
			return "", err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.m[key]
	if (expected == "" && ok) || (expected != "" && (!ok || cur.ver != expected)) {
		return "", provider.ErrConflict
	}
	if ok {
		old, err1 := provider.DecodeRecord(cur.v)
		nw, err2 := provider.DecodeRecord(v)
		if err1 == nil && err2 == nil && nw.Pair.Generation < old.Pair.Generation {
			b.t.Errorf("I5 violated: generation %d written over %d", nw.Pair.Generation, old.Pair.Generation)
		}
	}
	b.n++
	ver := provider.Version(strconv.Itoa(b.n))
	b.m[key] = memEntry{v: append([]byte(nil), v...), ver: ver}
	if b.ackLost != nil && b.ackLost(v) {
		return "", provider.Transient(errors.New("store answer lost"))
	}
	return ver, nil
}

func (b *memBackend) ReadOnly() bool { return b.ro }

func (b *memBackend) record(key string) *provider.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := provider.DecodeRecord(b.m[key].v)
	if err != nil {
		b.t.Fatalf("stored record: %v", err)
	}
	return r
}

func (b *memBackend) put(key string, r *provider.Record) provider.Version {
	v, err := r.Encode()
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	ver := provider.Version(strconv.Itoa(b.n))
	b.m[key] = memEntry{v: v, ver: ver}
	return ver
}

// fakeIssuer issues pairs with a fixed lifetime and enforces one-time
// refresh tokens; presenting a spent token is recorded as an I1 violation
// (unless allowed) and rejected.
type fakeIssuer struct {
	clock    *fakeClock
	lifetime time.Duration

	mu      sync.Mutex
	n       int
	spent   map[string]bool
	reuses  int
	calls   int
	answers []func(p provider.Pair) (provider.Pair, error) // scripted answers, consumed first
	block   chan struct{}                                  // if set, calls wait for it
}

func newIssuer(c *fakeClock, lifetime time.Duration) *fakeIssuer {
	return &fakeIssuer{clock: c, lifetime: lifetime, spent: map[string]bool{}}
}

func (f *fakeIssuer) mint() provider.Pair {
	f.n++
	return provider.Pair{
		AuthToken:    fmt.Sprintf("auth-%d", f.n),
		RefreshToken: fmt.Sprintf("refresh-%d", f.n),
		ValidUntil:   f.clock.Now().Add(f.lifetime).Truncate(time.Second),
		IssuedAt:     f.clock.Now().Truncate(time.Second),
		Endpoint:     "cell-1.example.com",
	}
}

func (f *fakeIssuer) script(fns ...func(p provider.Pair) (provider.Pair, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, fns...)
}

func (f *fakeIssuer) Refresh(ctx context.Context, p provider.Pair) (provider.Pair, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return provider.Pair{}, provider.Transient(ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.answers) > 0 {
		a := f.answers[0]
		f.answers = f.answers[1:]
		if a != nil {
			return a(p)
		}
	}
	if f.spent[p.RefreshToken] {
		f.reuses++
		return provider.Pair{}, fmt.Errorf("fake: token reused: %w", provider.ErrRefreshRejected)
	}
	f.spent[p.RefreshToken] = true
	return f.mint(), nil
}

func (f *fakeIssuer) stats() (calls, reuses int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.reuses
}

// notDelivered and maybeDelivered are scripted issuer failures.
func notDelivered(provider.Pair) (provider.Pair, error) {
	return provider.Pair{}, provider.Transient(fmt.Errorf("dial: connection refused: %w", provider.ErrNotDelivered))
}

func maybeDelivered(provider.Pair) (provider.Pair, error) {
	return provider.Pair{}, provider.Transient(errors.New("read: connection reset"))
}

func rejected(provider.Pair) (provider.Pair, error) {
	return provider.Pair{}, fmt.Errorf("fake: invalid_grant: %w", provider.ErrRefreshRejected)
}

// recordingMetrics counts events.
type recordingMetrics struct {
	mu     sync.Mutex
	counts map[Event]int
}

func (m *recordingMetrics) Count(_ string, ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[Event]int{}
	}
	m.counts[ev]++
}
func (m *recordingMetrics) SecondsToExpiry(string, float64) {}
func (m *recordingMetrics) get(ev Event) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[ev]
}
