// Package devtest starts the dev issuer for tests, on loopback, with a
// clock the test can move forward.
package devtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
)

// Clock is the server's clock: the wall clock plus an offset the test
// advances to expire keys without sleeping.
type Clock struct{ offset atomic.Int64 }

// Now returns the server's notion of now.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the server's clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Start starts a dev issuer on 127.0.0.1 for the rest of the test; optFns
// run after the clock is installed.
func Start(t testing.TB, optFns ...func(*dev.Options)) (*dev.Server, *Clock) {
	t.Helper()
	clock := &Clock{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", append([]func(*dev.Options){func(o *dev.Options) { o.Clock = clock.Now }}, optFns...)...)
	if err != nil {
		t.Fatalf("dev.Listen: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, clock
}
