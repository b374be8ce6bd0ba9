package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Switch is a fault mode kept in a file, so that a test process can
// change how a Backend behaves inside other processes. The zero mode (no
// file, or an empty one) is Pass.
type Switch string

// Set writes the mode; delay is used in Delay mode.
func (s Switch) Set(m Mode, delay time.Duration) error {
	line := m.String()
	if m == Delay {
		line += " " + delay.String()
	}
	tmp := string(s) + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o600); err != nil {
		return fmt.Errorf("faults: switch: %w", err)
	}
	if err := os.Rename(tmp, string(s)); err != nil {
		return fmt.Errorf("faults: switch: %w", err)
	}
	return nil
}

// Get reads the mode; a missing or unreadable file is Pass.
func (s Switch) Get() (Mode, time.Duration) {
	b, err := os.ReadFile(string(s))
	if err != nil {
		return Pass, 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return Pass, 0
	}
	switch f[0] {
	case "delay":
		if len(f) == 2 {
			if d, err := time.ParseDuration(f[1]); err == nil {
				return Delay, d
			}
		}
	case "blackhole":
		return Blackhole, 0
	case "refuse":
		return Refuse, 0
	}
	return Pass, 0
}

// ErrInjected is the failure a Backend injects in Refuse mode, and when a
// blackholed call is cut off; it is wrapped as transient, like a network
// error.
var ErrInjected = errors.New("faults: injected backend failure")

// Backend wraps a provider.Backend (the file backend has no network to cut)
// and applies its Switch's mode to every call: Delay holds the call for
// the delay (or until the mode changes) and then runs it even if the
// caller gave up meanwhile, as a server that received a request late
// still processes it; Blackhole holds
// the call until the caller's context ends, or fails it with ErrInjected
// when the blackhole ends; Refuse fails it at once with ErrInjected.
type Backend struct {
	provider.Backend
	Switch Switch
}

var _ provider.Backend = (*Backend)(nil)
var _ provider.WriteChecker = (*Backend)(nil)

// Load applies the switch, then loads.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	return apply(ctx, b.Switch, func(ctx context.Context) (provider.Entry, error) {
		return b.Backend.Load(ctx, key)
	})
}

// CompareAndSwap applies the switch, then swaps.
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	return apply(ctx, b.Switch, func(ctx context.Context) (provider.Version, error) {
		return b.Backend.CompareAndSwap(ctx, key, expected, value)
	})
}

// CheckWrite forwards to the wrapped backend's check, if it has one.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	wc, ok := b.Backend.(provider.WriteChecker)
	if !ok {
		return nil
	}
	_, err := apply(ctx, b.Switch, func(ctx context.Context) (struct{}, error) { return struct{}{}, wc.CheckWrite(ctx, key) })
	return err
}

// result is what a call returned.
type result[T any] struct {
	v   T
	err error
}

// apply runs op under sw's current mode.
func apply[T any](ctx context.Context, sw Switch, op func(context.Context) (T, error)) (T, error) {
	var zero T
	mode, delay := sw.Get()
	switch mode {
	case Refuse:
		return zero, provider.Transient(fmt.Errorf("faults: backend refused: %w", ErrInjected))
	case Blackhole:
		for {
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return zero, provider.Transient(fmt.Errorf("faults: backend unreachable: %w", ctx.Err()))
			case <-t.C:
			}
			if m, _ := sw.Get(); m != Blackhole {
				return zero, provider.Transient(fmt.Errorf("faults: connection reset after a partition: %w", ErrInjected))
			}
		}
	case Delay:
		// Like the TCP proxy, a call held when the slowness ends goes
		// through at once. A call whose caller gave up meanwhile still
		// runs; its result goes nowhere.
		done := make(chan result[T], 1)
		go func() {
			for end := time.Now().Add(delay); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if m, _ := sw.Get(); m != Delay {
					break
				}
			}
			v, err := op(context.WithoutCancel(ctx))
			done <- result[T]{v, err}
		}()
		select {
		case r := <-done:
			return r.v, r.err
		case <-ctx.Done():
			return zero, provider.Transient(fmt.Errorf("faults: slow backend: %w", ctx.Err()))
		}
	}
	return op(ctx)
}

// Pause is a directory through which a test stops one process at a
// protocol step and lets it go on: the process calls Wait at the step; the
// test calls Reached, injects its fault, then Release.
type Pause string

// Wait marks the step reached by who and blocks until Release, or for at
// most limit. Only the first caller across all processes sharing the
// directory pauses; Wait reports whether this caller did.
func (p Pause) Wait(who string, limit time.Duration) bool {
	tmp := filepath.Join(string(p), ".reached-"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(tmp, []byte(who), 0o600); err != nil {
		return false
	}
	defer os.Remove(tmp)
	// A hard link fails if the name exists: the first caller wins, and
	// Reached never sees a file without its content.
	if err := os.Link(tmp, filepath.Join(string(p), "reached")); err != nil {
		return false
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(string(p), "release")); err == nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Reached waits until a process is paused, or ctx ends, and returns what
// it passed to Wait as who.
func (p Pause) Reached(ctx context.Context) (string, error) {
	for {
		if b, err := os.ReadFile(filepath.Join(string(p), "reached")); err == nil {
			return string(b), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("faults: no process reached the pause in %s: %w", p, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Release lets the paused process go on.
func (p Pause) Release() error {
	return os.WriteFile(filepath.Join(string(p), "release"), nil, 0o600)
}
