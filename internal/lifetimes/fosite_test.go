package lifetimes

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"

	"github.com/credhelper/credhelper/provider"
)

// fositeServer is ory/fosite, a third-party OAuth2 server library, serving
// the resource owner password grant (to mint a first pair), the refresh
// grant with rotation and reuse detection (a reused refresh token revokes
// the whole grant, access tokens included, per RFC 9700 section 4.14.2),
// and RFC 7662 introspection, with opaque HMAC tokens. Its example store
// has the client my-client (secret foobar) and the user peter (secret).
type fositeServer struct {
	url      string
	refreshN atomic.Int64 // refresh grant requests
}

const (
	fositeClient = "my-client"
	fositeSecret = "foobar"
)

func newFosite(t *testing.T, accessTTL, refreshTTL time.Duration) *fositeServer {
	t.Helper()
	cfg := &fosite.Config{
		AccessTokenLifespan:  accessTTL,
		RefreshTokenLifespan: refreshTTL,
		GlobalSecret:         []byte("credhelper-lifetimes-test-secret-32b"),
	}
	store := storage.NewExampleStore()
	oauth := compose.Compose(cfg, store, &compose.CommonStrategy{CoreStrategy: compose.NewOAuth2HMACStrategy(cfg)},
		//lint:ignore SA1019 the password grant stands in for the interactive login that mints a first pair, which a test cannot run
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
	)
	fs := &fositeServer{}
	mux := http.NewServeMux()
	// fosite's example MemoryStore is not safe for concurrent requests
	// (it races between introspection and rotation): one at a time.
	var one sync.Mutex
	serial := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			one.Lock()
			defer one.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("POST /token", serial(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token" {
			fs.refreshN.Add(1)
		}
		ar, err := oauth.NewAccessRequest(ctx, r, &fosite.DefaultSession{Subject: "peter"})
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		resp, err := oauth.NewAccessResponse(ctx, ar)
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		oauth.WriteAccessResponse(ctx, w, ar, resp)
	}))
	mux.HandleFunc("POST /introspect", serial(func(w http.ResponseWriter, r *http.Request) {
		ir, err := oauth.NewIntrospectionRequest(r.Context(), r, &fosite.DefaultSession{})
		if err != nil {
			oauth.WriteIntrospectionError(r.Context(), w, err)
			return
		}
		oauth.WriteIntrospectionResponse(r.Context(), w, ir)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	fs.url = "http://" + ln.Addr().String()
	return fs
}

// form posts a form to the server with the client's Basic credentials.
func (f *fositeServer) form(t *testing.T, path string, v url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.url+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(fositeClient, fositeSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// firstPair mints a pair with the password grant, as an interactive login
// would, and returns it with its stored lifetime fields.
func (f *fositeServer) firstPair(t *testing.T) provider.Pair {
	t.Helper()
	code, m := f.form(t, "/token", url.Values{"grant_type": {"password"}, "username": {"peter"}, "password": {"secret"}, "scope": {"offline"}})
	at, _ := m["access_token"].(string)
	rt, _ := m["refresh_token"].(string)
	exp, _ := m["expires_in"].(float64)
	if code != http.StatusOK || at == "" || rt == "" || exp <= 0 {
		t.Fatalf("fosite password grant: HTTP %d %v", code, m["error"])
	}
	now := time.Now().Truncate(time.Second)
	return provider.Pair{AuthToken: at, RefreshToken: rt, ValidUntil: now.Add(time.Duration(exp) * time.Second), IssuedAt: now}
}

// active asks introspection whether token is active.
func (f *fositeServer) active(t *testing.T, token string) bool {
	t.Helper()
	code, m := f.form(t, "/introspect", url.Values{"token": {token}})
	if code != http.StatusOK {
		t.Fatalf("fosite introspection: HTTP %d", code)
	}
	a, _ := m["active"].(bool)
	return a
}

func (w *world) fositeFlags(f *fositeServer) ([]string, []string) {
	return []string{"--issuer", "oauth2:" + f.url + "/token", "--client-id", fositeClient, "--client-secret-env", "FOSITE_SECRET"},
		[]string{"FOSITE_SECRET=" + fositeSecret}
}

// An access token that expired is refreshed with its refresh token at a
// real OAuth2 server; its opaque tokens get their lifetime from the
// response and the recorded issue time.
func TestFositeRefreshAfterAccessTokenExpiry(t *testing.T) {
	// 5-second access tokens: the refreshed one is not yet due when get
	// exits (its window is min_validity plus 2s), so no background
	// refresher runs while the test looks.
	f := newFosite(t, 5*time.Second, time.Hour)
	w := newWorld(t)
	p := f.firstPair(t)
	be := w.store("fosite", &provider.Record{Pair: p})
	time.Sleep(time.Until(p.ValidUntil) + 1500*time.Millisecond) // the access token has expired
	flags, env := w.fositeFlags(f)
	r := w.run("credhelper", env, "", append([]string{"get", "--backend", be, "--min-validity", "100ms", "--refresh-floor", "2s"}, flags...)...).
		want(t, "get", 0).noSecrets(t, "get", p)
	rec := w.record(be)
	r.wantOut(t, "get", rec.Pair.AuthToken+"\n")
	if rec.Pair.Generation != 1 || rec.Pair.AuthToken == p.AuthToken || rec.Pair.RefreshToken == p.RefreshToken {
		t.Fatalf("stored generation %d; want 1 with rotated tokens", rec.Pair.Generation)
	}
	if got := f.refreshN.Load(); got != 1 {
		t.Errorf("fosite saw %d refresh requests, want 1", got)
	}
	if !near(rec.Pair.IssuedAt, time.Now(), 5*time.Second) || rec.Pair.ValidUntil.Sub(rec.Pair.IssuedAt) < 4*time.Second || rec.Pair.ValidUntil.Sub(rec.Pair.IssuedAt) > 6*time.Second {
		t.Errorf("stored issuedAt %v, validUntil %v: want the 5s lifetime fosite stated", rec.Pair.IssuedAt, rec.Pair.ValidUntil)
	}
	if !f.active(t, rec.Pair.RefreshToken) || f.active(t, p.RefreshToken) {
		t.Errorf("fosite: the new refresh token must be active and the spent one not")
	}
}

// Presenting a spent refresh token makes fosite revoke the whole grant,
// the newest access token included; credhelper reports the lineage broken
// and, because OAuth2 revokes the family's access tokens, stops serving at
// once without presenting anything again.
func TestFositeReuseBreaksLineageAtOnce(t *testing.T) {
	f := newFosite(t, time.Hour, time.Hour)
	w := newWorld(t)
	p0 := f.firstPair(t)
	be := w.store("fosite", &provider.Record{Pair: p0})
	flags, env := w.fositeFlags(f)
	w.run("credhelper", env, "", append([]string{"refresh", "--force", "--backend", be}, flags...)...).want(t, "refresh", 0)
	p1 := w.record(be).Pair
	if !f.active(t, p1.AuthToken) {
		t.Fatal("fosite: the refreshed access token is not active")
	}
	// Someone stores the spent generation-0 pair again (an old backup).
	in, _ := (&provider.Record{Pair: p0}).Encode()
	w.run("credhelper", env, string(in), append([]string{"put", "--backend", be}, flags...)...).want(t, "put", 0)
	w.run("credhelper", env, "", append([]string{"refresh", "--force", "--backend", be}, flags...)...).
		want(t, "refresh (spent token)", 1).wantErr(t, "refresh", "lineage", "broken", "spent or revoked").noSecrets(t, "refresh", p0, p1)
	if f.active(t, p1.AuthToken) || f.active(t, p1.RefreshToken) {
		t.Fatal("fosite did not revoke the family on reuse; the test's premise (RFC 9700 4.14.2) fails")
	}
	before := f.refreshN.Load()
	w.run("credhelper", env, "", append([]string{"get", "--backend", be}, flags...)...).
		want(t, "get (broken)", 1).wantOut(t, "get", "").wantErr(t, "get", "lineage", "credhelper generate")
	if got := f.refreshN.Load() - before; got != 0 {
		t.Errorf("fosite saw %d more refresh requests after the lineage broke, want 0", got)
	}
}
