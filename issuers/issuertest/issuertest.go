package issuertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Counters are the issuer server's call counters the contract checks.
type Counters struct {
	// Refreshes counts successful refreshes.
	Refreshes uint64
	// Reuses counts presentations of an already spent refresh token.
	Reuses uint64
	// FamiliesRevoked counts token families revoked by reuse detection.
	FamiliesRevoked uint64
}

// Config describes the issuer under test and the server behind it.
type Config struct {
	// Issuer is the issuer under test, talking to the server.
	Issuer provider.Issuer
	// Mint mints a first pair on the server, out of band: lifetime, or a
	// never-expiring pair when never is set.
	Mint func(t testing.TB, lifetime time.Duration, never bool) provider.Pair
	// Advance moves the server's clock forward by d.
	Advance func(d time.Duration)
	// Counters, when set, returns the server's counters; the contract then
	// checks them.
	Counters func(t testing.TB) Counters
	// Endpoint, when set, is the endpoint every returned pair must name.
	Endpoint string
	// NoRotate says the server does not rotate refresh tokens: a refresh
	// keeps the old one, which stays valid, and reuse is not detected.
	NoRotate bool
	// AssumedLifetime, when set, says the protocol cannot express "never
	// expires" (OAuth2 has only expires_in): a refresh of a never-expiring
	// pair must then yield a pair of this lifetime, never a never-expiring
	// one.
	AssumedLifetime time.Duration
	// Generator, when set, is tested too (with SessionToken as the good
	// session token).
	Generator    provider.Generator
	SessionToken string
	// Timeout bounds each call; default 10s.
	Timeout time.Duration
}

// Run runs the contract as subtests of t. It moves the server's clock with
// Advance, so the server must not be shared with tests running in parallel.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Issuer == nil || cfg.Mint == nil || cfg.Advance == nil {
		t.Fatal("issuertest: Config needs Issuer, Mint and Advance")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &contract{cfg: cfg}
	t.Run("RefreshRotates", c.refreshRotates)
	if cfg.NoRotate {
		t.Run("RefreshTokenReusableWithoutRotation", c.reusableWithoutRotation)
	} else {
		t.Run("ReusedRefreshTokenRevokesFamily", c.reuseRevokesFamily)
	}
	t.Run("UnknownRefreshTokenRejected", c.unknownRejected)
	t.Run("NeverLifetime", c.neverLifetime)
	if cfg.Generator != nil {
		t.Run("Generate", c.generate)
		t.Run("GenerateBadSessionToken", c.generateBadSession)
	}
	// Last: it moves the server's clock.
	t.Run("ExpiredPairCannotRefresh", c.expired)
}

type contract struct {
	cfg Config
}

func (c *contract) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (c *contract) counters(t *testing.T) Counters {
	if c.cfg.Counters == nil {
		return Counters{}
	}
	return c.cfg.Counters(t)
}

func (c *contract) refresh(t *testing.T, p provider.Pair) provider.Pair {
	t.Helper()
	got, err := c.cfg.Issuer.Refresh(c.ctx(t), p)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	c.checkPair(t, got, p)
	return got
}

// checkPair checks a pair returned by a refresh of prev.
func (c *contract) checkPair(t *testing.T, got, prev provider.Pair) {
	t.Helper()
	if got.AuthToken == "" {
		t.Fatal("refreshed pair has an empty auth token")
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("refreshed pair does not validate: %v", err)
	}
	if got.AuthToken == prev.AuthToken {
		t.Error("refresh returned the same auth token")
	}
	if got.Never() != prev.Never() && !(prev.Never() && c.cfg.AssumedLifetime > 0) {
		t.Errorf("refresh changed never-expiring from %v to %v", prev.Never(), got.Never())
	}
	if !got.Never() && got.ValidUntil.Before(prev.ValidUntil) {
		t.Errorf("refreshed pair valid until %v, before the previous pair's %v", got.ValidUntil, prev.ValidUntil)
	}
	if c.cfg.Endpoint != "" {
		ep, err := got.ResolveEndpoint()
		if err != nil || ep != c.cfg.Endpoint {
			t.Errorf("refreshed pair's endpoint = %q (%v), want %q", ep, err, c.cfg.Endpoint)
		}
	}
}

// wantRejected checks err is a permanent rejection free of secrets.
func wantRejected(t *testing.T, err error, also error, pairs ...provider.Pair) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("Refresh succeeded, want a rejection")
	case !errors.Is(err, provider.ErrRefreshRejected) && (also == nil || !errors.Is(err, also)):
		t.Fatalf("Refresh error = %v, want one wrapping provider.ErrRefreshRejected", err)
	case provider.IsTransient(err):
		t.Errorf("Refresh error %v is transient, want permanent", err)
	case errors.Is(err, provider.ErrNotDelivered):
		t.Errorf("Refresh error %v wraps ErrNotDelivered", err)
	}
	noSecrets(t, err, pairs...)
	t.Logf("rejected as expected: %v", err)
}

func noSecrets(t *testing.T, err error, pairs ...provider.Pair) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, p := range pairs {
		for _, s := range []string{p.AuthToken, p.RefreshToken} {
			if s != "" && strings.Contains(msg, s) {
				t.Errorf("error text contains a token: %q", msg)
			}
		}
	}
}

func (c *contract) refreshRotates(t *testing.T) {
	before := c.counters(t)
	p0 := c.cfg.Mint(t, time.Hour, false)
	if p0.Never() {
		t.Fatal("Mint(1h) returned a never-expiring pair")
	}
	p1 := c.refresh(t, p0)
	if c.cfg.NoRotate {
		if p1.RefreshToken != p0.RefreshToken {
			t.Error("server does not rotate, but the refreshed pair has a new refresh token")
		}
	} else if p1.RefreshToken == p0.RefreshToken {
		t.Error("refresh did not rotate the refresh token")
	}
	p2 := c.refresh(t, p1)
	if p2.AuthToken == p0.AuthToken {
		t.Error("second refresh returned the first auth token")
	}
	if c.cfg.Counters != nil {
		if got := c.counters(t).Refreshes - before.Refreshes; got != 2 {
			t.Errorf("server counted %d refreshes, want 2", got)
		}
	}
}

func (c *contract) reuseRevokesFamily(t *testing.T) {
	p0 := c.cfg.Mint(t, time.Hour, false)
	p1 := c.refresh(t, p0)
	before := c.counters(t)
	_, err := c.cfg.Issuer.Refresh(c.ctx(t), p0)
	wantRejected(t, err, nil, p0, p1)
	// The whole family is revoked, the newest pair's refresh token included.
	_, err = c.cfg.Issuer.Refresh(c.ctx(t), p1)
	wantRejected(t, err, nil, p0, p1)
	if c.cfg.Counters != nil {
		after := c.counters(t)
		if got := after.Reuses - before.Reuses; got != 1 {
			t.Errorf("server counted %d reuses, want 1", got)
		}
		if got := after.FamiliesRevoked - before.FamiliesRevoked; got != 1 {
			t.Errorf("server counted %d revoked families, want 1", got)
		}
		if after.Refreshes != before.Refreshes {
			t.Errorf("server counted %d successful refreshes after the reuse, want 0", after.Refreshes-before.Refreshes)
		}
	}
}

func (c *contract) reusableWithoutRotation(t *testing.T) {
	p0 := c.cfg.Mint(t, time.Hour, false)
	c.refresh(t, p0)
	c.refresh(t, p0)
}

func (c *contract) unknownRejected(t *testing.T) {
	p0 := c.cfg.Mint(t, time.Hour, false)
	bad := p0
	bad.RefreshToken = "bm90LWEtcmVhbC1yZWZyZXNoLXRva2VuLXRoYXQtd2FzLWlzc3VlZA"
	_, err := c.cfg.Issuer.Refresh(c.ctx(t), bad)
	wantRejected(t, err, nil, p0, bad)
	// The real token was not touched.
	c.refresh(t, p0)
}

func (c *contract) neverLifetime(t *testing.T) {
	p0 := c.cfg.Mint(t, 0, true)
	if !p0.Never() {
		t.Fatalf("Mint(never) valid until %v, want never (zero ValidUntil)", p0.ValidUntil)
	}
	if p0.RefreshToken == "" {
		return // nothing to refresh; a never pair needs no refresh
	}
	p1 := c.refresh(t, p0)
	if d := c.cfg.AssumedLifetime; d > 0 {
		if got := p1.ValidUntil.Sub(p1.IssuedAt); p1.Never() || got != d {
			t.Errorf("refresh of a pair whose response states no lifetime lives %v (never: %v), want the assumed %v", got, p1.Never(), d)
		}
		return
	}
	if !p1.Never() {
		t.Errorf("refresh of a never-expiring pair is valid until %v, want never", p1.ValidUntil)
	}
}

func (c *contract) generate(t *testing.T) {
	g := c.cfg.Generator
	p, err := g.Generate(c.ctx(t), provider.GenerateRequest{SessionToken: c.cfg.SessionToken, Lifetime: 2 * time.Hour, Description: "issuertest"})
	if err != nil {
		t.Fatalf("Generate(2h): %v", err)
	}
	if p.Never() || p.RefreshToken == "" || p.AuthToken == "" {
		t.Fatalf("Generate(2h) = %v, want an expiring pair with both tokens", p)
	}
	c.refresh(t, p)
	n, err := g.Generate(c.ctx(t), provider.GenerateRequest{SessionToken: c.cfg.SessionToken, Never: true})
	if err != nil {
		t.Fatalf("Generate(never): %v", err)
	}
	if !n.Never() {
		t.Errorf("Generate(never) valid until %v, want never", n.ValidUntil)
	}
}

func (c *contract) generateBadSession(t *testing.T) {
	bad := "not-the-session-token"
	_, err := c.cfg.Generator.Generate(c.ctx(t), provider.GenerateRequest{SessionToken: bad, Lifetime: time.Hour})
	switch {
	case err == nil:
		t.Fatal("Generate with a bad session token succeeded")
	case !errors.Is(err, provider.ErrPermission):
		t.Errorf("Generate error = %v, want one wrapping provider.ErrPermission", err)
	case provider.IsTransient(err):
		t.Errorf("Generate error %v is transient, want permanent", err)
	}
	noSecrets(t, err, provider.Pair{AuthToken: bad, RefreshToken: c.cfg.SessionToken})
}

func (c *contract) expired(t *testing.T) {
	p0 := c.cfg.Mint(t, time.Hour, false)
	c.cfg.Advance(2 * time.Hour)
	before := c.counters(t)
	_, err := c.cfg.Issuer.Refresh(c.ctx(t), p0)
	wantRejected(t, err, provider.ErrExpired, p0)
	if c.cfg.Counters != nil && c.counters(t).Refreshes != before.Refreshes {
		t.Error("server counted a successful refresh of an expired pair")
	}
}
