package momento_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/dev/devtest"
	"github.com/credhelper/credhelper/issuers/issuertest"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
)

// startDev starts a dev issuer on loopback for the test.
func startDev(t *testing.T, optFns ...func(*dev.Options)) (*dev.Server, *devtest.Clock) {
	return devtest.Start(t, optFns...)
}

// newIssuer returns a momento issuer pointed at srv.
func newIssuer(t *testing.T, srv *dev.Server, optFns ...func(*momento.Options)) *momento.Issuer {
	t.Helper()
	iss, err := momento.New(append([]func(*momento.Options){func(o *momento.Options) {
		o.Addr = srv.Addr()
		if tc := srv.ClientTLSConfig(); tc != nil {
			o.TLSConfig = tc
		} else {
			o.Insecure = true
		}
	}}, optFns...)...)
	if err != nil {
		t.Fatalf("momento.New: %v", err)
	}
	return iss
}

func mint(srv *dev.Server) func(testing.TB, time.Duration, bool) provider.Pair {
	return func(t testing.TB, lifetime time.Duration, never bool) provider.Pair {
		t.Helper()
		p, err := srv.Mint(provider.GenerateRequest{Lifetime: lifetime, Never: never})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		return p
	}
}

func counters(srv *dev.Server) func(testing.TB) issuertest.Counters {
	return func(testing.TB) issuertest.Counters {
		s := srv.Stats()
		return issuertest.Counters{Refreshes: s.Refreshes, Reuses: s.Reuses, FamiliesRevoked: s.FamiliesRevoked}
	}
}

func TestContract(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "plaintext"
		if tlsOn {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			srv, clock := startDev(t, func(o *dev.Options) { o.TLS = tlsOn })
			iss := newIssuer(t, srv)
			issuertest.Run(t, issuertest.Config{
				Issuer:       iss,
				Mint:         mint(srv),
				Advance:      clock.Advance,
				Counters:     counters(srv),
				Endpoint:     srv.Endpoint(),
				Generator:    iss,
				SessionToken: srv.SessionToken(),
			})
		})
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestExpiredPairRefusedWithoutCall(t *testing.T) {
	srv, _ := startDev(t)
	p, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t, srv, func(o *momento.Options) { o.Clock = func() time.Time { return time.Now().Add(2 * time.Hour) } })
	_, err = iss.Refresh(ctxT(t, 5*time.Second), p)
	if !errors.Is(err, provider.ErrExpired) || !errors.Is(err, provider.ErrNotDelivered) || provider.IsTransient(err) {
		t.Fatalf("Refresh(expired) error = %v, want permanent ErrExpired, not delivered", err)
	}
	if n := srv.Stats().RefreshAttempts; n != 0 {
		t.Errorf("server saw %d refresh attempts, want 0", n)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func wantNotDelivered(t *testing.T, err error) {
	t.Helper()
	if err == nil || !provider.IsTransient(err) || !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("error = %v, want transient wrapping provider.ErrNotDelivered", err)
	}
	if errors.Is(err, provider.ErrRefreshRejected) {
		t.Errorf("error %v also wraps ErrRefreshRejected", err)
	}
}

func wantMaybeDelivered(t *testing.T, err error) {
	t.Helper()
	if err == nil || !provider.IsTransient(err) {
		t.Fatalf("error = %v, want transient", err)
	}
	if errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("error %v wraps ErrNotDelivered, but the request reached the server", err)
	}
}

func TestConnectionRefusedNotDelivered(t *testing.T) {
	srv, _ := startDev(t)
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	iss, err := momento.New(func(o *momento.Options) { o.Addr = closedAddr(t); o.Insecure = true })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = iss.Refresh(ctxT(t, 10*time.Second), p)
	wantNotDelivered(t, err)
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not name the cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused connection took %v to report", d)
	}
	t.Logf("connection refused reported in %v: %v", time.Since(start), err)
}

func TestTLSHandshakeFailureNotDelivered(t *testing.T) {
	srv, _ := startDev(t, func(o *dev.Options) { o.TLS = true })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	// The system roots do not trust the dev server's self-signed certificate.
	iss, err := momento.New(func(o *momento.Options) { o.Addr = srv.Addr() })
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Refresh(ctxT(t, 10*time.Second), p)
	wantNotDelivered(t, err)
	if !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("error %q does not name the TLS handshake", err)
	}
	if n := srv.Stats().RefreshAttempts; n != 0 {
		t.Errorf("server saw %d refresh attempts, want 0", n)
	}
}

func TestUnresolvableHostNotDelivered(t *testing.T) {
	iss, err := momento.New(func(o *momento.Options) { o.Addr = "control.no-such-cell.invalid:443"; o.Timeout = 3 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Refresh(ctxT(t, 10*time.Second), provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)})
	wantNotDelivered(t, err)
}

func TestServerStallMaybeDelivered(t *testing.T) {
	srv, _ := startDev(t, func(o *dev.Options) { o.RefreshDelay = 1500 * time.Millisecond })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	iss := newIssuer(t, srv, func(o *momento.Options) { o.Timeout = 300 * time.Millisecond })
	_, err := iss.Refresh(context.Background(), p)
	wantMaybeDelivered(t, err)
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Errorf("error %q does not say the deadline passed", err)
	}
	// The server finishes the refresh after the client gave up: the token
	// really was spent, which is why this must not be ErrNotDelivered.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Refreshes == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := srv.Stats().Refreshes; n != 1 {
		t.Fatalf("server completed %d refreshes, want 1", n)
	}
}

func TestInjectedFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     dev.Fault
		wantSpent bool
	}{
		{"unavailable", dev.FaultUnavailable, false},
		{"lost response", dev.FaultLoseResponse, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := startDev(t)
			p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
			iss := newIssuer(t, srv)
			srv.FailNextRefreshes(1, tc.fault)
			_, err := iss.Refresh(ctxT(t, 5*time.Second), p)
			wantMaybeDelivered(t, err)
			// The holder retries at once with the same token.
			_, err = iss.Refresh(ctxT(t, 5*time.Second), p)
			if tc.wantSpent {
				if !errors.Is(err, provider.ErrRefreshRejected) {
					t.Fatalf("retry after a lost response: %v, want ErrRefreshRejected", err)
				}
			} else if err != nil {
				t.Fatalf("retry after Unavailable: %v", err)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(*momento.Options)
		want string
	}{
		{"addr without port", func(o *momento.Options) { o.Addr = "control.example.com" }, "host:port"},
		{"insecure without addr", func(o *momento.Options) { o.Insecure = true }, "explicit Addr"},
		{"negative timeout", func(o *momento.Options) { o.Timeout = -1 }, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := momento.New(tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultAddrFromToken(t *testing.T) {
	// Without Addr the issuer dials control.<endpoint>:443, the endpoint
	// decoded from the key; the .invalid cell makes that fail before
	// sending, and the error names the address it tried.
	srv, _ := startDev(t, func(o *dev.Options) { o.Endpoint = "cell-x.invalid" })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	p.Endpoint = ""
	iss, err := momento.New(func(o *momento.Options) { o.Timeout = 3 * time.Second })
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Refresh(ctxT(t, 10*time.Second), p)
	wantNotDelivered(t, err)
	if !strings.Contains(err.Error(), "control.cell-x.invalid:443") {
		t.Errorf("error %q does not name control.cell-x.invalid:443", err)
	}
}
