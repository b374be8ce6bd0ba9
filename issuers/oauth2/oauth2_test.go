package oauth2_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/dev/devtest"
	"github.com/credhelper/credhelper/issuers/issuertest"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
	"io"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
)

// startDev starts a dev issuer on loopback for the test.
func startDev(t *testing.T, optFns ...func(*dev.Options)) (*dev.Server, *devtest.Clock) {
	return devtest.Start(t, optFns...)
}

func newIssuer(t *testing.T, srv *dev.Server, optFns ...func(*oauth2.Options)) *oauth2.Issuer {
	t.Helper()
	iss, err := oauth2.New(srv.TokenURL(), append([]func(*oauth2.Options){func(o *oauth2.Options) {
		o.ClientID, o.ClientSecret = srv.ClientID(), srv.ClientSecret()
		if tc := srv.ClientTLSConfig(); tc != nil {
			o.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		}
	}}, optFns...)...)
	if err != nil {
		t.Fatalf("oauth2.New: %v", err)
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
	for _, tc := range []struct {
		name     string
		tls      bool
		noRotate bool
		style    oauth2.AuthStyle
		postOnly bool
	}{
		{name: "plaintext basic", style: oauth2.AuthBasic},
		{name: "tls post", tls: true, style: oauth2.AuthPost},
		{name: "auto falls back to post", style: oauth2.AuthAuto, postOnly: true},
		{name: "server does not rotate", noRotate: true, style: oauth2.AuthBasic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, clock := startDev(t, func(o *dev.Options) { o.TLS, o.NoRotate, o.PostAuthOnly = tc.tls, tc.noRotate, tc.postOnly })
			issuertest.Run(t, issuertest.Config{
				Issuer:   newIssuer(t, srv, func(o *oauth2.Options) { o.AuthStyle = tc.style }),
				Mint:     mint(srv),
				Advance:  clock.Advance,
				Counters: counters(srv),
				Endpoint: srv.Endpoint(),
				NoRotate: tc.noRotate,
				// OAuth2 cannot say "never": a response without expires_in
				// gets the assumed lifetime.
				AssumedLifetime: oauth2.DefaultAssumedLifetime,
			})
		})
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBadClientSecretIsPermission(t *testing.T) {
	srv, _ := startDev(t)
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthBasic, oauth2.AuthPost, oauth2.AuthAuto} {
		iss := newIssuer(t, srv, func(o *oauth2.Options) { o.ClientSecret = "wrong-secret-value"; o.AuthStyle = style })
		_, err := iss.Refresh(ctxT(t, 5*time.Second), p)
		if !errors.Is(err, provider.ErrPermission) || provider.IsTransient(err) || errors.Is(err, provider.ErrRefreshRejected) {
			t.Errorf("%s: error = %v, want permanent ErrPermission", style, err)
		}
		if err != nil && (strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), p.RefreshToken)) {
			t.Errorf("%s: error leaks a secret: %v", style, err)
		}
	}
	// The refresh token was never evaluated, so it still works.
	if _, err := newIssuer(t, srv).Refresh(ctxT(t, 5*time.Second), p); err != nil {
		t.Fatalf("Refresh after refused client auth: %v", err)
	}
	if s := srv.Stats(); s.Reuses != 0 {
		t.Errorf("server saw %d reuses, want 0 (auto must not present the token twice)", s.Reuses)
	}
}

func TestAutoAuthProbesOnce(t *testing.T) {
	srv, _ := startDev(t, func(o *dev.Options) { o.PostAuthOnly = true })
	iss := newIssuer(t, srv, func(o *oauth2.Options) { o.AuthStyle = oauth2.AuthAuto })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	for range 3 {
		var err error
		if p, err = iss.Refresh(ctxT(t, 5*time.Second), p); err != nil {
			t.Fatal(err)
		}
	}
	if s := srv.Stats(); s.Rejected != 1 || s.Refreshes != 3 || s.Reuses != 0 {
		t.Errorf("stats %+v, want exactly one refused Basic probe, 3 refreshes, no reuse", s)
	}
}

func TestConnectionRefusedNotDelivered(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	iss, err := oauth2.New("http://"+addr+"/oauth2/token", func(o *oauth2.Options) { o.ClientID = "c" })
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Refresh(ctxT(t, 5*time.Second), provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)})
	if !provider.IsTransient(err) || !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("error = %v, want transient ErrNotDelivered", err)
	}
}

func TestTLSHandshakeFailureNotDelivered(t *testing.T) {
	srv, _ := startDev(t, func(o *dev.Options) { o.TLS = true })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	iss, err := oauth2.New(srv.TokenURL(), func(o *oauth2.Options) { o.ClientID, o.ClientSecret = srv.ClientID(), srv.ClientSecret() })
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Refresh(ctxT(t, 5*time.Second), p)
	if !provider.IsTransient(err) || !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("error = %v, want transient ErrNotDelivered", err)
	}
	if n := srv.Stats().RefreshAttempts; n != 0 {
		t.Errorf("server saw %d refresh attempts, want 0", n)
	}
}

func TestServerStallMaybeDelivered(t *testing.T) {
	srv, _ := startDev(t, func(o *dev.Options) { o.RefreshDelay = 1500 * time.Millisecond })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	iss := newIssuer(t, srv, func(o *oauth2.Options) { o.Timeout = 300 * time.Millisecond })
	_, err := iss.Refresh(context.Background(), p)
	if !provider.IsTransient(err) || errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("error = %v, want transient without ErrNotDelivered", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Refreshes == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := srv.Stats().Refreshes; n != 1 {
		t.Fatalf("server completed %d refreshes, want 1 (the stalled request was delivered)", n)
	}
}

func TestServerUnavailableIsTransient(t *testing.T) {
	srv, _ := startDev(t)
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	iss := newIssuer(t, srv)
	srv.FailNextRefreshes(1, dev.FaultUnavailable)
	_, err := iss.Refresh(ctxT(t, 5*time.Second), p)
	if !provider.IsTransient(err) || errors.Is(err, provider.ErrNotDelivered) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error = %v, want transient HTTP 503 without ErrNotDelivered", err)
	}
}

func TestExpiry(t *testing.T) {
	srv, _ := startDev(t)
	iss := newIssuer(t, srv)
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: 90 * time.Minute})
	start := time.Now()
	got, err := iss.Refresh(ctxT(t, 5*time.Second), p)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.ValidUntil.Sub(start); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("expires_in 5400 gave a validity of %v, want about 90m", d)
	}
	if got.Endpoint != srv.Endpoint() {
		t.Errorf("endpoint %q, want %q (decoded from the access token)", got.Endpoint, srv.Endpoint())
	}
}

func TestNoExpiresInUsesDefaultLifetime(t *testing.T) {
	srv, _ := startDev(t)
	never, _ := srv.Mint(provider.GenerateRequest{Never: true})
	iss := newIssuer(t, srv, func(o *oauth2.Options) { o.DefaultLifetime = 10 * time.Minute })
	got, err := iss.Refresh(ctxT(t, 5*time.Second), never)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(got.ValidUntil); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("no expires_in with DefaultLifetime 10m gave %v", d)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		fn        func(*oauth2.Options)
		want      string
	}{
		{"http to remote host", "http://login.example.com/token", func(o *oauth2.Options) { o.ClientID = "c" }, "use https"},
		{"relative url", "/token", func(o *oauth2.Options) { o.ClientID = "c" }, "absolute"},
		{"no client id", "https://login.example.com/token", func(*oauth2.Options) {}, "ClientID"},
		{"bad auth style", "https://login.example.com/token", func(o *oauth2.Options) { o.ClientID = "c"; o.AuthStyle = "bearer" }, "AuthStyle"},
		{"extra grant_type", "https://login.example.com/token", func(o *oauth2.Options) { o.ClientID = "c"; o.ExtraParams = map[string][]string{"grant_type": {"x"}} }, "grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := oauth2.New(tc.url, tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestIntrospection: with an introspection endpoint the issuer tells an
// active refresh token from a spent one without spending it; without one
// it says it cannot tell.
func TestIntrospection(t *testing.T) {
	for _, style := range []oauth2.AuthStyle{oauth2.AuthBasic, oauth2.AuthPost} {
		srv, _ := startDev(t)
		p0 := mint(srv)(t, time.Hour, false)
		iss := newIssuer(t, srv, func(o *oauth2.Options) { o.IntrospectionURL, o.AuthStyle = srv.IntrospectionURL(), style })
		if active, err := iss.RefreshTokenActive(ctxT(t, 10*time.Second), p0); err != nil || !active {
			t.Fatalf("%s: fresh token: active %v, err %v; want active", style, active, err)
		}
		if _, err := iss.Refresh(ctxT(t, 10*time.Second), p0); err != nil {
			t.Fatal(err)
		}
		if active, err := iss.RefreshTokenActive(ctxT(t, 10*time.Second), p0); err != nil || active {
			t.Fatalf("%s: spent token: active %v, err %v; want inactive", style, active, err)
		}
		if st := srv.Stats(); st.Introspections != 2 || st.Refreshes != 1 || st.Reuses != 0 {
			t.Errorf("%s: server stats %+v: want 2 introspections, 1 refresh, 0 reuses", style, st)
		}
	}
	srv, _ := startDev(t)
	if _, err := newIssuer(t, srv).RefreshTokenActive(ctxT(t, 10*time.Second), mint(srv)(t, time.Hour, false)); !errors.Is(err, provider.ErrUnsupported) {
		t.Errorf("without an introspection URL: err %v, want ErrUnsupported", err)
	}
	if _, err := oauth2.New(srv.TokenURL(), func(o *oauth2.Options) { o.ClientID, o.IntrospectionURL = "x", "http://example.com/introspect" }); err == nil {
		t.Error("plain http introspection to a non-loopback host accepted")
	}
}

// TestServerAnswersOfEveryKind: a server echoing the request (as some
// proxies do) never gets the client secret into an error, in any encoding;
// a refusal other than invalid_grant leaves the token unspent; a lifetime
// that is negative or already over is taken for unknown.
func TestServerAnswersOfEveryKind(t *testing.T) {
	var answer atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		body := answer.Load().(func(r *http.Request) (int, string))
		code, text := body(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, text)
	}))
	defer srv.Close()
	const secret = "s3cret/with+chars"
	iss, err := oauth2.New(srv.URL, func(o *oauth2.Options) { o.ClientID, o.ClientSecret = "my client", secret })
	if err != nil {
		t.Fatal(err)
	}
	pair := provider.Pair{AuthToken: "at", RefreshToken: "rt-secret", ValidUntil: time.Now().Add(time.Hour)}
	echo := func(r *http.Request) (int, string) {
		desc := "got Authorization " + r.Header.Get("Authorization") + " and " + r.PostForm.Encode()
		b, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": desc})
		return http.StatusBadRequest, string(b)
	}
	answer.Store(echo)
	_, err = iss.Refresh(ctxT(t, 10*time.Second), pair)
	if err == nil || !errors.Is(err, provider.ErrNotDelivered) {
		t.Fatalf("invalid_request: err %v, want the token reported unspent (ErrNotDelivered)", err)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape("my client") + ":" + url.QueryEscape(secret)))
	for _, leak := range []string{secret, url.QueryEscape(secret), basic, "rt-secret"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q contains a secret form %q", err, leak)
		}
	}
	for _, expiresIn := range []int{-100, 0} {
		answer.Store(func(*http.Request) (int, string) {
			return http.StatusOK, fmt.Sprintf(`{"access_token":"new-at","token_type":"Bearer","expires_in":%d,"refresh_token":"new-rt"}`, expiresIn)
		})
		p, err := iss.Refresh(ctxT(t, 10*time.Second), pair)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.ValidUntil.Sub(p.IssuedAt); got != oauth2.DefaultAssumedLifetime {
			t.Errorf("expires_in %d: lifetime %v, want the assumed %v", expiresIn, got, oauth2.DefaultAssumedLifetime)
		}
	}
}
