package refresh_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// TestShortLifetimeNoRefreshStorm stores a pair whose lifetime (5 minutes,
// common for OAuth2 access tokens) is no longer than the default
// RefreshFloor (5 minutes), and calls Credential for one second with the
// default options. Every pair the issuer returns is then born inside its
// own refresh window, so each caller on the slow path starts another
// refresh at once: the engine once refreshed back to back for as long as it was
// called. Expected: at most one refresh (the window should be capped below
// the lifetime, or such a pair refreshed once per lifetime).
func TestShortLifetimeNoRefreshStorm(t *testing.T) {
	srv, err := dev.Listen(ctxFor(t, time.Minute), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "cred.json")
	b, _ := file.New()
	v, _ := (&provider.Record{Pair: first}).Encode()
	if _, err := b.CompareAndSwap(ctxFor(t, time.Minute), key, "", v); err != nil {
		t.Fatal(err)
	}
	iss, err := oauth2.New(srv.TokenURL(), func(o *oauth2.Options) { o.ClientID, o.ClientSecret = dev.DefaultClientID, dev.DefaultClientSecret })
	if err != nil {
		t.Fatal(err)
	}
	e, err := refresh.New(b, iss, key, func(o *refresh.Options) { o.JournalDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		if _, err := e.Credential(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if n := srv.Stats().Refreshes; n > 1 {
		t.Errorf("%d refreshes in one second of 5-minute pairs, want at most 1", n)
	}
}
