package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	svchost "github.com/hashicorp/terraform-svchost"
	svcauth "github.com/hashicorp/terraform-svchost/auth"
)

// scopeConfig has a working profile (alpha) for every face, a profile
// with a typo (gamma) and one whose face entries no face can use (delta).
func scopeConfig(goproxyURL, cargoIndex string) string {
	return `
[profiles.alpha]
backend = "file:%DIR%/alpha.json"
[profiles.alpha.goauth]
url_prefixes = ["` + goproxyURL + `"]
[profiles.alpha.cargo]
index_urls = ["` + cargoIndex + `"]
[profiles.alpha.kubelet]
match_images = ["registry.example.com"]
[profiles.alpha.bazel]
hosts = ["bazel.example.com"]
[profiles.alpha.terraform]
hosts = ["app.terraform.io"]
[profiles.alpha.docker]
server_urls = ["docker.example.com"]
[profiles.alpha.git]
host = "git.example.com"

[profiles.gamma]
backned = "x"
[profiles.gamma.bazel]
hosts = ["gamma.example.com"]

[profiles.delta]
backend = "file:%DIR%/alpha.json"
[profiles.delta.bazel]
hosts = ["https://bazel2.example.com/path"]
[profiles.delta.terraform]
hosts = ["https://tf2.example.com"]
[profiles.delta.kubelet]
match_images = ["127.0.0.1:PORTX"]
[profiles.delta.goauth]
url_prefixes = ["http://plain.example.com"]
`
}

// TestUnusableProfileFailsOnlyItsRequests: a typo in one profile and face
// entries no face can use in another leave every face working, through the
// real clients, for the profile that is fine; the broken profiles are
// warned about once each, a request one of them would answer fails with
// its error, and config check lists every bad entry with what to write.
func TestUnusableProfileFailsOnlyItsRequests(t *testing.T) {
	proxySeen := &seenTokens{}
	proxy, proxyCA := goproxy(t, func(tok string) bool { return tok == faceToken }, proxySeen)
	regSeen := &seenTokens{}
	reg, regCA := cargoRegistry(t, func(auth string) bool { return auth == faceToken }, regSeen)
	index := "sparse+" + reg.URL + "/index/"
	w := newFaceWorld(t, scopeConfig(proxy.URL, index))
	writeRecord(t, filepath.Join(w.dir, "alpha.json"), neverPair())

	warnedOnceEach := func(what, stderr string) {
		t.Helper()
		for _, name := range []string{"gamma", "delta"} {
			if n := strings.Count(stderr, `profile \"`+name+`\" cannot be used`); n != 1 {
				t.Errorf("%s: warned %d times about %s, want once:\n%s", what, n, name, stderr)
			}
		}
		noFaceSecrets(t, what, stderr)
	}

	// GOAUTH, through the real go command.
	r := runTool(t, goEnv(t, w, proxy.URL, proxyCA), w.dir, "go", "mod", "download", "-json", "example.com/private/mod@v1.0.0")
	if r.code != 0 {
		t.Errorf("go mod download: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, denied := proxySeen.snapshot(); denied != 0 {
		t.Errorf("the proxy denied %d requests", denied)
	}
	r = runBin(t, w.env, "", "credhelper", "goauth")
	if r.code != 0 || !strings.Contains(r.stdout, "Bearer "+faceToken) {
		t.Errorf("credhelper goauth: %+v", r)
	}
	warnedOnceEach("goauth", r.stderr)

	// cargo, through the real cargo.
	env, dir := cargoProject(t, w, index, regCA)
	if r := runTool(t, env, dir, "cargo", "generate-lockfile"); r.code != 0 {
		t.Errorf("cargo generate-lockfile: exit %d\n%s", r.code, r.stderr)
	}

	// Terraform, through HashiCorp's helper-program client.
	src := svcauth.HelperProgramCredentialsSource(filepath.Join(binDir, "terraform-credentials-credhelper"))
	creds, err := src.ForHost(svchost.Hostname("app.terraform.io"))
	if err != nil || creds == nil || creds.Token() != faceToken {
		t.Errorf("terraform: %v, %v", creds, err)
	}

	// Bazel, kubelet, docker and git.
	r = runBin(t, w.env, `{"uri":"https://bazel.example.com/ac/0"}`, "credhelper-bazel", "get")
	if r.code != 0 || !strings.Contains(r.stdout, "Bearer "+faceToken) {
		t.Errorf("bazel: %+v", r)
	}
	warnedOnceEach("bazel", r.stderr)
	r = runBin(t, w.env, `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/app:1"}`, "credhelper", "kubelet")
	if r.code != 0 || !strings.Contains(r.stdout, faceToken) {
		t.Errorf("kubelet: %+v", r)
	}
	warnedOnceEach("kubelet", r.stderr)
	if r := runBin(t, w.env, "docker.example.com", "docker-credential-credhelper", "get"); r.code != 0 || !strings.Contains(r.stdout, faceToken) {
		t.Errorf("docker: %+v", r)
	}
	if r := runBin(t, w.env, "protocol=https\nhost=git.example.com\n\n", "credhelper", "git", "get"); r.code != 0 || !strings.Contains(r.stdout, "password="+faceToken) {
		t.Errorf("git: %+v", r)
	}

	// A request the typo'd profile would answer gets its error, not the
	// next helper's answer.
	r = runBin(t, w.env, `{"uri":"https://gamma.example.com/ac/0"}`, "credhelper-bazel", "get")
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, `profile "gamma" cannot be used`) || !strings.Contains(r.stderr, "did you mean backend?") {
		t.Errorf("bazel for gamma: %+v", r)
	}

	// config check names every bad face entry, with its line and what to
	// write instead.
	r = runBin(t, w.env, "", "credhelper", "config", "check")
	for _, want := range []string{
		`hosts entry "https://bazel2.example.com/path" in [profiles.delta.bazel]: a hosts entry is a host, not a URL: write "bazel2.example.com"`,
		`hosts entry "https://tf2.example.com" in [profiles.delta.terraform]: a hosts entry is a host, as Terraform passes it, not a URL: write "tf2.example.com"`,
		`match_images entry "127.0.0.1:PORTX" in [profiles.delta.kubelet]: the port is not a number: write "127.0.0.1:5000"`,
		`url_prefixes entry "http://plain.example.com" in [profiles.delta.goauth]: the go command runs GOAUTH for HTTPS only: write "https://plain.example.com"`,
		"unknown setting backned in [profiles.gamma]: did you mean backend?",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config check lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 1 || !strings.Contains(r.stdout, "5 problem(s)") {
		t.Errorf("config check: exit %d\n%s", r.code, r.stdout)
	}
}

// TestAgentServesAroundUnusableProfiles: the agent starts with the
// profiles that work and logs the others; a reload applies what it can,
// keeps a running profile whose new settings are broken on its previous
// ones, and reports each, exiting 1.
func TestAgentServesAroundUnusableProfiles(t *testing.T) {
	good := "[profiles.alpha]\nbackend = \"file:%DIR%/alpha.json\"\n"
	// gamma has a typo; delta a sink that would be readable by all; eps
	// names a plugin the file does not define. None stops the agent.
	w := newFaceWorld(t, good+"[profiles.gamma]\nbackned = \"x\"\n"+
		"[profiles.delta]\nbackend = \"file:%DIR%/alpha.json\"\n[[profiles.delta.sink]]\npath = \"%DIR%/delta.sink\"\nmode = \"0644\"\n"+
		"[profiles.eps]\nbackend = \"plugin:nope:k\"\n")
	writeRecord(t, filepath.Join(w.dir, "alpha.json"), neverPair())
	stop, agentErr := startFaceAgent(t, w)
	if r := runBin(t, w.env, "", "credhelper", "get", "--profile", "alpha"); r.code != 0 || r.stdout != faceToken+"\n" {
		t.Errorf("get alpha: %+v", r)
	}
	if r := runBin(t, w.env, "", "credhelper", "get", "--profile", "gamma"); r.code != 2 || !strings.Contains(r.stderr, "did you mean backend?") {
		t.Errorf("get gamma: %+v", r)
	}

	// alpha's new settings are broken: it keeps its running ones.
	cfg := strings.ReplaceAll("[profiles.alpha]\nbackend = \"file:%DIR%/alpha.json\"\nmin_validty = \"2m\"\n[profiles.gamma]\nbackned = \"x\"\n", "%DIR%", w.dir)
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, w.env, "", "credhelper", "agent", "reload")
	if r.code != 1 || !strings.Contains(r.stderr, `agent reload: reloaded, except: profile "alpha" kept its previous settings`) ||
		!strings.Contains(r.stderr, `profile "gamma" not started`) || !strings.Contains(r.stderr, "did you mean min_validity?") {
		t.Errorf("reload: %+v", r)
	}
	if r := runBin(t, w.env, "", "credhelper", "get", "--profile", "alpha"); r.code != 0 || r.stdout != faceToken+"\n" {
		t.Errorf("get alpha after the reload: %+v", r)
	}
	stop() // before reading its log
	if log := agentErr.String(); !strings.Contains(log, `not serving profile \"gamma\"`) || !strings.Contains(log, "did you mean backend?") {
		t.Errorf("the agent's log does not name gamma and its mistake:\n%s", log)
	}
	for _, want := range []string{`not serving profile \"delta\"`, "mode 0644 lets others read the token", `not serving profile \"eps\"`, `plugin \"nope\"`} {
		if !strings.Contains(agentErr.String(), want) {
			t.Errorf("the agent's log lacks %s:\n%s", want, agentErr.String())
		}
	}
	noFaceSecrets(t, "agent log", agentErr.String())
}

// silentIssuer accepts connections and never answers; it counts them.
func silentIssuer(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String(), accepted
}

// TestGoAuthFirstRunWaitsOnNoIssuer: the go command's first GOAUTH run
// (no URL) answers the profiles usable now and leaves out one whose pair
// needs its silent issuer, without contacting it; the go command's fetch
// through the usable profile succeeds.
func TestGoAuthFirstRunWaitsOnNoIssuer(t *testing.T) {
	seen := &seenTokens{}
	srv, caFile := goproxy(t, func(tok string) bool { return tok == faceToken }, seen)
	addr, accepted := silentIssuer(t)
	w := newFaceWorld(t, `
[profiles.mods]
backend = "file:%DIR%/mods.json"
[profiles.mods.goauth]
url_prefixes = ["`+srv.URL+`"]
[profiles.slow]
backend = "file:%DIR%/slow.json"
issuer = "dev:`+addr+`"
issuer_timeout = "5s"
[profiles.slow.goauth]
url_prefixes = ["https://slow.example.com"]
`)
	writeRecord(t, filepath.Join(w.dir, "mods.json"), neverPair())
	slow := neverPair()
	slow.ValidUntil = time.Now().Add(30 * time.Second) // below min_validity: only a refresh serves it
	writeRecord(t, filepath.Join(w.dir, "slow.json"), slow)

	r := runBin(t, w.env, "", "credhelper", "goauth")
	if r.code != 0 || r.stdout != "https://"+strings.TrimPrefix(srv.URL, "https://")+"\n\nAuthorization: Bearer "+faceToken+"\n\n" {
		t.Errorf("credhelper goauth: %+v", r)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the first run contacted the silent issuer %d times", n)
	}
	r = runTool(t, goEnv(t, w, srv.URL, caFile), w.dir, "go", "mod", "download", "-json", "example.com/private/mod@v1.0.0")
	if r.code != 0 {
		t.Errorf("go mod download: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the go command's first run contacted the silent issuer %d times", n)
	}
	noFaceSecrets(t, "goauth", r.stderr)
}

// TestGoAuthRejectedEverywhere: a proxy that rejects every token makes the
// go command re-run credhelper once per module; without an agent, as with
// one, that costs one refresh, not one per re-run.
func TestGoAuthRejectedEverywhere(t *testing.T) {
	dev, minted := startDev(t)
	seen := &seenTokens{}
	srv, caFile := goproxy(t, func(string) bool { return false }, seen)
	w := newFaceWorld(t, `
[profiles.mods]
backend = "file:%DIR%/mods.json"
issuer = "dev:`+dev.Addr()+`"
[profiles.mods.goauth]
url_prefixes = ["`+srv.URL+`"]
`)
	minted.IssuedAt = time.Now().Add(-10 * time.Minute)
	writeRecord(t, filepath.Join(w.dir, "mods.json"), minted)
	r := runTool(t, goEnv(t, w, srv.URL, caFile), w.dir, "go", "mod", "download", "-json",
		"example.com/private/mod@v1.0.0", "example.com/private/a@v1.0.0", "example.com/private/b@v1.0.0")
	if r.code == 0 {
		t.Fatal("go mod download succeeded against a proxy that rejects everything")
	}
	_, denied := seen.snapshot()
	if st := dev.Stats(); st.Refreshes != 1 || st.Reuses != 0 || denied < 3 {
		t.Errorf("dev issuer %+v after %d rejected requests: want one refresh", st, denied)
	}
}

// TestFacesSayWhatToDo: cargo's answer for an expired pair ends with the
// same advice the other faces print, and a config file that does not exist
// is said with an example profile in every face, as in get.
func TestFacesSayWhatToDo(t *testing.T) {
	regSeen := &seenTokens{}
	reg, regCA := cargoRegistry(t, func(auth string) bool { return auth == faceToken }, regSeen)
	index := "sparse+" + reg.URL + "/index/"
	w := newFaceWorld(t, `
[profiles.crates]
backend = "file:%DIR%/crates.json"
[profiles.crates.cargo]
index_urls = ["`+index+`"]
`)
	expired := neverPair()
	expired.ValidUntil = time.Now().Add(-time.Hour)
	writeRecord(t, filepath.Join(w.dir, "crates.json"), expired)
	env, dir := cargoProject(t, w, index, regCA)
	r := runTool(t, env, dir, "cargo", "generate-lockfile")
	if r.code == 0 || !strings.Contains(r.stderr, `profile "crates"`) || !strings.Contains(r.stderr, "store a new pair with 'credhelper generate' or 'credhelper put'") {
		t.Errorf("cargo with an expired pair: exit %d\n%s", r.code, r.stderr)
	}
	noFaceSecrets(t, "cargo", r.stderr)

	missing := append(append([]string{}, w.env...), "CREDHELPER_CONFIG="+filepath.Join(w.dir, "missing.toml"))
	example := "  [profiles.default]\n  backend = \"file:~/.config/credhelper/default.json\"\n"
	for _, tc := range []struct {
		stdin string
		argv  []string
	}{
		{"", []string{"credhelper", "goauth"}},
		{`{"uri":"https://cache.example.com/x"}`, []string{"credhelper-bazel", "get"}},
		{"", []string{"terraform-credentials-credhelper", "get", "app.terraform.io"}},
		{`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"r.example.com/a"}`, []string{"credhelper", "kubelet"}},
	} {
		r := runBin(t, missing, tc.stdin, tc.argv[0], tc.argv[1:]...)
		if r.code == 0 || !strings.Contains(r.stderr, "no config file at "+filepath.Join(w.dir, "missing.toml")) || !strings.Contains(r.stderr, example) {
			t.Errorf("%v with no config file: %+v", tc.argv, r)
		}
	}
	r = runBin(t, missing, "", "credhelper", "get", "--profile", "alpha")
	if r.code != 2 || !strings.Contains(r.stderr, "  [profiles.alpha]\n") {
		t.Errorf("get with no config file: %+v", r)
	}
}

// startFaceAgent starts the built binary's agent for w on a socket of its
// own (and points this process and w.env at it); stop ends it, after which
// its log may be read.
func startFaceAgent(t *testing.T, w *faceWorld) (stop func(), log *bytes.Buffer) {
	t.Helper()
	sockDir := filepath.Join(w.dir, "sock")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "a.sock")
	t.Setenv("CREDHELPER_NO_AGENT", "")
	t.Setenv("CREDHELPER_AGENT_SOCKET", sock)
	w.env = os.Environ()
	agentCmd, _, agentErr := startBin(t, w.env, "agent")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start: %s", agentErr.String())
		}
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			agentCmd.Process.Signal(os.Interrupt)
			exitCode(t, agentCmd)
		}
	}
	t.Cleanup(stop)
	return stop, agentErr
}
