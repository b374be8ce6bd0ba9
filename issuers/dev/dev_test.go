package dev_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

func start(t *testing.T, optFns ...func(*dev.Options)) *dev.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", optFns...)
	if err != nil {
		t.Fatalf("dev.Listen: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestMintedTokensDecode(t *testing.T) {
	srv := start(t, func(o *dev.Options) { o.Endpoint = "cell-7.example.test" })
	before := time.Now().Truncate(time.Second)
	p, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	info, err := provider.ParseAuthToken(p.AuthToken)
	if err != nil {
		t.Fatalf("ParseAuthToken: %v", err)
	}
	if info.Form != provider.TokenV1 || info.Endpoint != "cell-7.example.test" {
		t.Errorf("token form %q endpoint %q, want v1 key for cell-7.example.test", info.Form, info.Endpoint)
	}
	if !info.Expires.Equal(p.ValidUntil) {
		t.Errorf("token exp %v, pair valid until %v", info.Expires, p.ValidUntil)
	}
	if d := p.ValidUntil.Sub(before); d < time.Hour || d > time.Hour+2*time.Second {
		t.Errorf("lifetime %v, want about 1h", d)
	}
	if len(p.RefreshToken) != 43 { // 32 bytes, base64url without padding
		t.Errorf("refresh token is %d characters, want 43", len(p.RefreshToken))
	}
	n, err := srv.Mint(provider.GenerateRequest{Never: true})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Never() {
		t.Errorf("Mint(never) valid until %v", n.ValidUntil)
	}
	if info, _ := provider.ParseAuthToken(n.AuthToken); !info.Expires.IsZero() {
		t.Errorf("never key carries exp %v", info.Expires)
	}
}

func TestNewServerRejectsBadOptions(t *testing.T) {
	for name, fn := range map[string]func(*dev.Options){
		"endpoint with port": func(o *dev.Options) { o.Endpoint = "cell:443" },
		"short lifetime":     func(o *dev.Options) { o.Lifetime = time.Millisecond },
		"negative delay":     func(o *dev.Options) { o.RefreshDelay = -time.Second },
		"nil clock":          func(o *dev.Options) { o.Clock = nil },
	} {
		if _, err := dev.NewServer(fn); err == nil {
			t.Errorf("%s: NewServer succeeded", name)
		}
	}
}

// postToken calls the OAuth2 token endpoint with form and optional basic
// credentials, returning the status and decoded body.
func postToken(t *testing.T, srv *dev.Server, form url.Values, basicID, basicSecret string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return resp.StatusCode, body
}

func TestOAuth2Endpoint(t *testing.T) {
	srv := start(t)
	id, secret := srv.ClientID(), srv.ClientSecret()

	code, body := postToken(t, srv, url.Values{"grant_type": {"client_credentials"}, "lifetime_seconds": {"600"}}, id, secret)
	if code != 200 || body["refresh_token"] == nil || body["expires_in"].(float64) != 600 || body["token_type"] != "Bearer" {
		t.Fatalf("client_credentials: %d %v", code, body["error"])
	}
	rt := body["refresh_token"].(string)

	// Client authentication in the body works too, and the grant rotates.
	code, body = postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {id}, "client_secret": {secret}}, "", "")
	if code != 200 || body["refresh_token"] == rt {
		t.Fatalf("refresh: %d %v", code, body["error"])
	}
	// Reuse: invalid_grant, HTTP 400.
	code, body = postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, id, secret)
	if code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v, want 400 invalid_grant", code, body["error"])
	}
	for _, tc := range []struct {
		name       string
		form       url.Values
		id, secret string
		code       int
		err        string
	}{
		{"bad secret", url.Values{"grant_type": {"client_credentials"}}, id, "wrong", 401, "invalid_client"},
		{"no client", url.Values{"grant_type": {"client_credentials"}}, "", "", 401, "invalid_client"},
		{"bad grant type", url.Values{"grant_type": {"password"}}, id, secret, 400, "unsupported_grant_type"},
		{"no refresh token", url.Values{"grant_type": {"refresh_token"}}, id, secret, 400, "invalid_request"},
	} {
		code, body := postToken(t, srv, tc.form, tc.id, tc.secret)
		if code != tc.code || body["error"] != tc.err {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, body["error"], tc.code, tc.err)
		}
	}
}

func TestStatsEndpoint(t *testing.T) {
	srv := start(t, func(o *dev.Options) { o.TLS = true })
	p, _ := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.RefreshToken}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()}}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.ClientTLSConfig()}}
	for range 2 {
		resp, err := client.PostForm(srv.TokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := client.Get(srv.StatsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got dev.Stats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := dev.Stats{Generates: 1, Refreshes: 1, RefreshAttempts: 2, Rejected: 1, Reuses: 1, FamiliesRevoked: 1}
	if got != want {
		t.Errorf("GET /stats = %+v, want %+v", got, want)
	}
	if got != srv.Stats() {
		t.Errorf("GET /stats = %+v, Stats() = %+v", got, srv.Stats())
	}
}

func TestListenStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(srv.StatsURL()); err != nil {
		t.Fatalf("GET /stats while running: %v", err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := http.Get(srv.StatsURL()); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server still answering after its context was cancelled")
}
