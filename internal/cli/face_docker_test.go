package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// captureStderr sends this process's os.Stderr, which docker's client
// hands to the helper, to a file for the duration of fn.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = saved }()
	fn()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const dockerConfig = `
[profiles.reg]
backend = "file:%DIR%/reg.json"
[profiles.reg.docker]
server_urls = ["registry.example.com", "localhost:5000"]

[profiles.hub]
backend = "file:%DIR%/hub.json"
issuer = "%ISSUER%"
min_validity = "2500ms"
refresh_floor = "3600ms"
[profiles.hub.docker]
server_urls = ["https://index.docker.io/v1/"]
username = "robot"

[profiles.broken]
backend = "file:%DIR%/missing.json"
[profiles.broken.docker]
server_urls = ["broken.example.com"]
`

func TestDockerCredentialHelpersClient(t *testing.T) {
	srv, _ := startDev(t)
	// A 4s pair with less than the profile's 2.5s minimum validity left by
	// the time docker asks: get must refresh it first.
	minted, err := srv.Mint(provider.GenerateRequest{Lifetime: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := newFaceWorld(t, strings.ReplaceAll(dockerConfig, "%ISSUER%", "dev:"+srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "reg.json"), neverPair())
	writeRecord(t, filepath.Join(w.dir, "hub.json"), minted)
	prog := client.NewShellProgramFunc(filepath.Join(binDir, dockerHelperName))

	stderr := captureStderr(t, func() {
		for _, url := range []string{"registry.example.com", "https://registry.example.com/", "localhost:5000"} {
			c, err := client.Get(prog, url)
			if err != nil {
				t.Fatalf("Get(%q): %v", url, err)
			}
			if c.Secret != faceToken || c.Username != "<token>" || c.ServerURL != url {
				t.Errorf("Get(%q) = %q/%q/%q", url, c.ServerURL, c.Username, "<secret>")
			}
		}

		// The expiring profile is due: get refreshes it through the dev
		// issuer.
		time.Sleep(time.Until(minted.ValidUntil.Add(-2400 * time.Millisecond)))
		c, err := client.Get(prog, "https://index.docker.io/v1/")
		if err != nil {
			t.Fatalf("Get(hub): %v", err)
		}
		if c.Username != "robot" || c.Secret == minted.AuthToken || c.Secret == "" {
			t.Errorf("hub: username %q, secret refreshed: %v", c.Username, c.Secret != minted.AuthToken)
		}
		if info, err := provider.ParseAuthToken(c.Secret); err != nil || info.Endpoint != dev.DefaultEndpoint {
			t.Errorf("hub secret is not a dev-issuer key: %v", err)
		}
		if st := srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
			t.Errorf("dev issuer stats %+v, want one refresh, no reuse", st)
		}

		_, err = client.Get(prog, "quay.io")
		if !credentials.IsErrCredentialsNotFound(err) {
			t.Errorf("Get(unmapped) = %v, want docker's not-found error", err)
		}
		// The client recognises the message (it then reports it instead of
		// "exit status 1"), though it wraps it with %v.
		_, err = client.Get(prog, "")
		if err == nil || !strings.Contains(err.Error(), "err: no credentials server URL,") {
			t.Errorf("Get(\"\") = %v, want missing server URL", err)
		}

		l, err := client.List(prog)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"registry.example.com": "<token>", "localhost:5000": "<token>", "https://index.docker.io/v1/": "robot", "broken.example.com": "<token>"}
		if len(l) != len(want) {
			t.Errorf("List = %v, want %v", l, want)
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("List[%q] = %q, want %q", k, l[k], v)
			}
		}

		// docker stores back what get returned after every login: a no-op.
		if err := client.Store(prog, &credentials.Credentials{ServerURL: "registry.example.com", Username: "<token>", Secret: faceToken}); err != nil {
			t.Errorf("Store(current credential) = %v, want success", err)
		}
		for _, c := range []*credentials.Credentials{
			{ServerURL: "registry.example.com", Username: "<token>", Secret: "another-" + faceToken},
			{ServerURL: "quay.io", Username: "me", Secret: faceToken},
		} {
			err := client.Store(prog, c)
			if err == nil {
				t.Errorf("Store(%s) succeeded", c.ServerURL)
				continue
			}
			noFaceSecrets(t, "store error", err.Error())
		}
		if err := client.Store(prog, &credentials.Credentials{ServerURL: "registry.example.com", Secret: "x"}); err == nil || !strings.Contains(err.Error(), "err: no credentials username,") {
			t.Errorf("Store without username = %v", err)
		}
		if err := client.Erase(prog, "registry.example.com"); err == nil || !strings.Contains(err.Error(), "server_urls") {
			t.Errorf("Erase(mapped) = %v, want a refusal naming server_urls", err)
		}
		if err := client.Erase(prog, "quay.io"); err == nil || !strings.Contains(err.Error(), "credentials not found in native keychain") {
			t.Errorf("Erase(unmapped) = %v", err)
		}

		// Bad input and an unusable backend: message on stdout, exit 1,
		// no secret anywhere.
		for _, in := range []string{"\x00\x01garbage", strings.Repeat("x", 70000), "ftp://registry.example.com", "broken.example.com"} {
			_, err := client.Get(prog, in)
			if err == nil || credentials.IsErrCredentialsNotFound(err) || !strings.Contains(err.Error(), "exit status 1") {
				t.Errorf("Get(%.20q) = %v, want a failure with exit status 1", in, err)
				continue
			}
			noFaceSecrets(t, "get error", err.Error())
		}
	})
	noFaceSecrets(t, "helper stderr", stderr)

	// The argv[0] conventions of docker-credential-helpers' Serve.
	r := runBin(t, w.env, "", dockerHelperName)
	if r.code != 1 || !strings.HasPrefix(r.stdout, "Usage: docker-credential-credhelper") {
		t.Errorf("no action: %+v", r)
	}
	r = runBin(t, w.env, "", dockerHelperName, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "docker-credential-credhelper (github.com/credhelper/credhelper) ") {
		t.Errorf("version: %+v", r)
	}
	r = runBin(t, w.env, "registry.example.com", "credhelper", "docker", "get")
	if r.code != 0 || !strings.Contains(r.stdout, faceToken) {
		t.Errorf("credhelper docker get: %+v", r)
	}
	r = runBin(t, w.env, "quay.io", "credhelper", "docker", "get")
	if r.code != 1 || r.stdout != "credentials not found in native keychain\n" || r.stderr != "" {
		t.Errorf("credhelper docker get of an unmapped registry: %+v", r)
	}
	r = runBin(t, w.env, "", dockerHelperName, "frobnicate")
	if r.code != 1 || !strings.Contains(r.stdout, "unknown action: frobnicate") {
		t.Errorf("unknown action: %+v", r)
	}
}

func TestDockerConfigErrors(t *testing.T) {
	w := newFaceWorld(t, `
[profiles.a]
backend = "file:%DIR%/a.json"
[profiles.a.docker]
server_urls = ["ghcr.io"]
[profiles.b]
backend = "file:%DIR%/b.json"
[profiles.b.docker]
server_urls = ["https://ghcr.io/"]
`)
	// The later profile's entry is its mistake: the registry stays a's
	// (whose store is empty), and b is warned about.
	r := runBin(t, w.env, "ghcr.io", dockerHelperName, "get")
	if r.code != 1 || !strings.Contains(r.stdout, `profile "a"`) || strings.Contains(r.stdout, `"b"`) ||
		!strings.Contains(r.stderr, `server_urls entry \"https://ghcr.io/\" in [profiles.b.docker] is already in [profiles.a.docker]`) {
		t.Errorf("two profiles mapping one registry: %+v", r)
	}
}
