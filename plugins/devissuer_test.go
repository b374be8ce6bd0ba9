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
	iss := issuerOf(t, open(t, "devissuerplugin", []string{"-addr", srv.Addr(), "-insecure"}))
	gen, ok := iss.(provider.Generator)
	if !ok {
		t.Fatalf("the Momento issuer generates, but its plugin's issuer is no Generator")
	}
	if _, ok := iss.(provider.Introspector); ok {
		t.Errorf("the Momento issuer cannot introspect, but its plugin's issuer is an Introspector")
	}
	if got := provider.PolicyOf(iss); got != (provider.RefreshPolicy{}) {
		t.Errorf("Momento's policy through the plugin = %+v, want the zero policy", got)
	}
	first, err := gen.Generate(ctx, provider.GenerateRequest{SessionToken: srv.SessionToken(), Lifetime: time.Hour})
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
	iss := issuerOf(t, open(t, "devissuerplugin", []string{"-addr", addr, "-insecure", "-timeout", "5s"}))
	pair := provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour), Endpoint: "dev.local"}
	_, err = iss.Refresh(context.Background(), pair)
	if !errors.Is(err, provider.ErrNotDelivered) || !provider.IsTransient(err) {
		t.Errorf("Refresh to a closed port: err = %v, want transient ErrNotDelivered", err)
	}
}

// TestOAuth2IssuerThroughPlugin drives the real OAuth2 issuer, served by
// examples/devissuerplugin with an introspection endpoint, against a real
// dev issuer whose refresh tokens outlive their access tokens: the
// plugin's issuer cannot generate, states OAuth2's policy, introspects,
// and carries both new pair times.
func TestOAuth2IssuerThroughPlugin(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", func(o *dev.Options) { o.RefreshTTL = 24 * time.Hour })
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	defer srv.Close()
	path, sum := binary(t, "devissuerplugin")
	args := []string{"-token-url", srv.TokenURL(), "-client-id", srv.ClientID(), "-client-secret-env", "DEV_CLIENT_SECRET"}
	openIssuer := func(args ...string) provider.Issuer {
		p, err := Open(Spec{Path: path, SHA256: sum, Args: args, Env: []string{"DEV_CLIENT_SECRET=" + srv.ClientSecret()}})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		return issuerOf(t, p)
	}
	iss := openIssuer(append(args, "-introspection-url", srv.IntrospectionURL())...)
	if _, ok := iss.(provider.Generator); ok {
		t.Errorf("the OAuth2 issuer cannot generate, but its plugin's issuer is a Generator")
	}
	if got, want := provider.PolicyOf(iss), (provider.RefreshPolicy{RefreshAfterExpiry: true, RejectionRevokesAuthToken: true}); got != want {
		t.Errorf("OAuth2's policy through the plugin = %+v, want %+v", got, want)
	}
	in, ok := iss.(provider.Introspector)
	if !ok {
		t.Fatalf("the OAuth2 issuer introspects, but its plugin's issuer is no Introspector")
	}

	first, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Second)
	next, err := iss.Refresh(ctx, first)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if next.IssuedAt.Before(before) || next.IssuedAt.After(time.Now()) {
		t.Errorf("IssuedAt = %v, want the time of the refresh (%v or later)", next.IssuedAt, before)
	}
	if d := next.RefreshValidUntil.Sub(next.IssuedAt); d < 24*time.Hour-2*time.Second || d > 24*time.Hour+time.Second {
		t.Errorf("RefreshValidUntil = %v, %v after IssuedAt; want the server's refresh_token_expires_in, 24h", next.RefreshValidUntil, d)
	}

	// The answers cross the boundary: spent, active, and the server asked
	// each time.
	for _, tc := range []struct {
		name string
		pair provider.Pair
		want bool
	}{{"spent", first, false}, {"current", next, true}} {
		active, err := in.RefreshTokenActive(ctx, tc.pair)
		if err != nil || active != tc.want {
			t.Errorf("RefreshTokenActive(%s refresh token) = %v, %v; want %v", tc.name, active, err, tc.want)
		}
	}
	if got := srv.Stats(); got.Introspections != 2 || got.Refreshes != 1 || got.Reuses != 0 {
		t.Errorf("dev issuer stats %+v, want 2 introspections, 1 refresh and no reuse", got)
	}

	// Without an introspection endpoint the served issuer still has the
	// method, so it declares it, and it answers ErrUnsupported through the
	// boundary, as in process.
	plain := openIssuer(args...)
	if in, ok := plain.(provider.Introspector); !ok {
		t.Errorf("the OAuth2 issuer without an introspection URL is no Introspector through the plugin")
	} else if _, err := in.RefreshTokenActive(ctx, next); !errors.Is(err, provider.ErrUnsupported) {
		t.Errorf("RefreshTokenActive without an introspection URL: err = %v, want ErrUnsupported", err)
	}
}
