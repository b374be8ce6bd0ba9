package plugins

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// TestDevIssuerThroughPlugin drives the real Momento issuer, served by
// examples/devissuerplugin, against a real dev issuer on loopback.
func TestDevIssuerThroughPlugin(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	defer srv.Close()
	iss := open(t, "devissuerplugin", []string{"-addr", srv.Addr(), "-insecure"}).Issuer()
	first, err := iss.Generate(ctx, provider.GenerateRequest{SessionToken: srv.SessionToken(), Lifetime: time.Hour})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if first.Never() || first.RefreshToken == "" {
		t.Fatalf("Generate = %v, want an expiring pair with a refresh token", first)
	}
	next, err := iss.Refresh(ctx, first)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if next.RefreshToken == first.RefreshToken || next.AuthToken == first.AuthToken {
		t.Errorf("Refresh returned the same tokens")
	}
	// A spent refresh token is rejected, and the kind survives the boundary.
	if _, err := iss.Refresh(ctx, first); !errors.Is(err, provider.ErrRefreshRejected) || provider.IsTransient(err) {
		t.Errorf("Refresh with a spent token: err = %v, want permanent ErrRefreshRejected", err)
	}
	if got := srv.Stats(); got.Refreshes != 1 || got.Reuses != 1 {
		t.Errorf("dev issuer stats %+v, want 1 refresh and 1 reuse", got)
	}
}

// TestNotDeliveredThroughPlugin checks that an issuer's "certainly not
// delivered" (nothing listens at its address) stays so through the plugin.
func TestNotDeliveredThroughPlugin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	iss := open(t, "devissuerplugin", []string{"-addr", addr, "-insecure", "-timeout", "5s"}).Issuer()
	pair := provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour), Endpoint: "dev.local"}
	_, err = iss.Refresh(context.Background(), pair)
	if !errors.Is(err, provider.ErrNotDelivered) || !provider.IsTransient(err) {
		t.Errorf("Refresh to a closed port: err = %v, want transient ErrNotDelivered", err)
	}
}
