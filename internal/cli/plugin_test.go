package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// TestPluginIssuerCapabilities drives the built binary with issuers served
// by examples/devissuerplugin: the CLI sees what each plugin declares, as
// it would see the same issuer in process. Momento's generates; OAuth2's
// cannot, and its policy (a refresh token outlives its access token)
// crosses the boundary, so an expired access token is refreshed.
func TestPluginIssuerCapabilities(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0", func(o *dev.Options) { o.RefreshTTL = 24 * time.Hour })
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "devissuerplugin")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	w := newFaceWorld(t, fmt.Sprintf(`
[plugins.mom]
path = %[1]q
sha256 = %[2]q
args = ["-addr", %[3]q, "-insecure"]

[plugins.oauth]
path = %[1]q
sha256 = %[2]q
args = ["-token-url", %[4]q, "-client-id", %[5]q, "-client-secret-env", "DEV_CLIENT_SECRET"]
env = ["DEV_CLIENT_SECRET"]
`, bin, hex.EncodeToString(sum[:]), srv.Addr(), srv.TokenURL(), srv.ClientID()))
	env := append(w.env, "DEV_SESSION="+srv.SessionToken(), "DEV_CLIENT_SECRET="+srv.ClientSecret())

	r := runBin(t, env, "", "credhelper", "generate", "--backend=file:"+filepath.Join(w.dir, "mom.json"), "--issuer=plugin:mom:x",
		"--session-token-env=DEV_SESSION", "--ttl=1h")
	if r.code != 0 {
		t.Fatalf("generate through the Momento plugin: exit %d, stderr %s", r.code, r.stderr)
	}
	if st := srv.Stats(); st.Generates != 1 {
		t.Errorf("dev issuer stats %+v after generate, want 1 generate", st)
	}

	r = runBin(t, env, "", "credhelper", "generate", "--backend=file:"+filepath.Join(w.dir, "oauth.json"), "--issuer=plugin:oauth:x",
		"--session-token-env=DEV_SESSION", "--ttl=1h")
	if r.code != 2 || !strings.Contains(r.stderr, "cannot mint pairs") {
		t.Errorf("generate through the OAuth2 plugin: exit %d, stderr %q; want 2 and that the issuer cannot mint pairs", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "oauth.json")); !os.IsNotExist(err) {
		t.Errorf("a refused generate stored something: %v", err)
	}

	// An OAuth2 pair whose access token expired 2 seconds ago and whose
	// refresh token is good for a day.
	pair, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair.ValidUntil = time.Now().Add(-2 * time.Second).Truncate(time.Second)
	path := filepath.Join(w.dir, "expired.json")
	writeRecord(t, path, pair)
	r = runBin(t, env, "", "credhelper", "get", "--backend=file:"+path, "--issuer=plugin:oauth:x")
	if r.code != 0 || strings.TrimSpace(r.stdout) == "" || strings.TrimSpace(r.stdout) == pair.AuthToken {
		t.Fatalf("get of an expired OAuth2 access token through the plugin: exit %d, stdout %q, stderr %s; want a new token", r.code, r.stdout, r.stderr)
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("dev issuer stats %+v, want exactly one refresh and no reuse", st)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pair.RefreshValidUntil.IsZero() || rec.Pair.IssuedAt.IsZero() {
		t.Errorf("the stored refreshed pair lost a time the plugin sent: refresh valid until %v, issued at %v", rec.Pair.RefreshValidUntil, rec.Pair.IssuedAt)
	}
}

// TestPluginIssuerUnavailableServesUsablePair: an issuer plugin that
// cannot be opened (here its binary no longer matches its pin) does not
// stop get from serving a usable stored pair, fresh or due; an expired
// pair fails with the plugin's error, and nothing is spent or stored.
func TestPluginIssuerUnavailableServesUsablePair(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := newFaceWorld(t, fmt.Sprintf(`
[plugins.gone]
path = %q
sha256 = %q
args = ["-addr", %q, "-insecure"]
`, filepath.Join(binDir, "devissuerplugin"), strings.Repeat("ab", 32), srv.Addr()))
	for _, tc := range []struct {
		name string
		left time.Duration
		code int
	}{
		{"fresh", time.Hour, 0},
		{"due", 90 * time.Second, 0},
		{"expired", -time.Second, 1},
	} {
		pair, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		pair.ValidUntil = time.Now().Add(tc.left).Truncate(time.Second)
		path := filepath.Join(w.dir, tc.name+".json")
		writeRecord(t, path, pair)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		stamp := time.Now().Add(-time.Hour).Truncate(time.Second)
		if err := os.Chtimes(path, stamp, stamp); err != nil {
			t.Fatal(err)
		}
		r := runBin(t, w.env, "", "credhelper", "get", "--backend=file:"+path, "--issuer=plugin:gone:x", "--min-validity=30s", "--refresh-floor=5m")
		t.Logf("%s: exit %d, stderr %s", tc.name, r.code, r.stderr)
		if r.code != tc.code {
			t.Errorf("%s pair, issuer plugin unavailable: exit %d, stdout %q, stderr %s; want %d", tc.name, r.code, r.stdout, r.stderr, tc.code)
		}
		if tc.code == 0 && strings.TrimSpace(r.stdout) != pair.AuthToken {
			t.Errorf("%s pair: stdout %q, want the stored auth token", tc.name, r.stdout)
		}
		if !strings.Contains(r.stderr, "checksum") || strings.Contains(r.stderr, pair.RefreshToken) {
			t.Errorf("%s pair: stderr %q, want the plugin's pin mismatch named and no refresh token", tc.name, r.stderr)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("%s pair: the stored record changed:\n%s\nwas\n%s", tc.name, after, before)
		}
		if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(stamp) {
			t.Errorf("%s pair: the credential file was rewritten (mtime %v, was %v): nothing may be claimed without an issuer", tc.name, fi.ModTime(), stamp)
		}
		if tc.code != 0 && !strings.Contains(r.stderr, "its issuer cannot be opened") {
			t.Errorf("%s pair: stderr %q does not say the issuer cannot be opened", tc.name, r.stderr)
		}
	}
	time.Sleep(time.Second) // a background refresher of the due pair fails at once
	if st := srv.Stats(); st.RefreshAttempts != 0 {
		t.Errorf("dev issuer saw %d refresh attempts from an unavailable plugin", st.RefreshAttempts)
	}
}
