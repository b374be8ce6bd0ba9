package momento_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// TestConnectionShared: with ShareIdle, refreshes of many lineages through
// one Issuer, 8 at a time, travel over one connection; after the issuer restarts on the
// same address, a call that cannot connect is not delivered, and the next
// one dials afresh and succeeds.
func TestConnectionShared(t *testing.T) {
	srv, err := dev.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go srv.Serve(cl)
	addr := ln.Addr().String()
	iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure, o.ShareIdle = addr, true, time.Minute })
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				p, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
				if err == nil {
					_, err = iss.Refresh(context.Background(), p)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cl.accepted.Load(); n != 1 {
		t.Errorf("40 refreshes opened %d connections, want 1", n)
	}
	if st := srv.Stats(); st.Refreshes != 40 {
		t.Errorf("issuer refreshes = %d, want 40", st.Refreshes)
	}

	// Stop the issuer: a call is not delivered. Start it again on the same
	// address: the next call connects afresh.
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	srv.Close()
	time.Sleep(100 * time.Millisecond) // the client sees its connection closed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := iss.Refresh(ctx, p); !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("refresh with the issuer down: %v, want not delivered", err)
	}
	srv2, err := dev.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv2.Serve(ln2)
	defer srv2.Close()
	p2, _ := srv2.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	start := time.Now()
	if _, err := iss.Refresh(ctx, p2); err != nil {
		t.Fatalf("refresh after the issuer came back: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refresh after the issuer came back took %v: it waited out a reconnect backoff", d)
	}
}
