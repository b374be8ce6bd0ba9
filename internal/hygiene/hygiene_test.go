package hygiene

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// The distinctive pair every face is asked for.
const (
	appAuth    = "HYGIENE-AUTH-7c4e1f0a"
	appRefresh = "HYGIENE-REFRESH-93ab2d55"
	plugAuth   = "HYGIENE-AUTH-PLUG-2d61c3e8"
	plugRefr   = "HYGIENE-REFRESH-PLUG-f08e7b14"
)

func recordJSON(auth, refresh string, validUntil int64) string {
	return fmt.Sprintf(`{"apiKey":%q,"refreshToken":%q,"validUntil":%d,"endpoint":"cell-1.example.com"}`, auth, refresh, validUntil)
}

// sha256File returns the hex digest of the file at p.
func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestSecretHygiene runs every command and face, succeeding and failing,
// directly and through the agent, and then searches everything they left
// for every token, refresh token, session token and client secret seen.
func TestSecretHygiene(t *testing.T) {
	w := newWorld(t)
	srv := w.startDev()
	w.setEnv("HYG_CLIENT_SECRET", srv.ClientSecret())
	w.secret("app auth", authToken, appAuth)
	w.secret("app refresh", refreshToken, appRefresh)
	w.secret("plugin auth", authToken, plugAuth)
	w.secret("plugin refresh", refreshToken, plugRefr)
	plugin := filepath.Join(binDir, "fileplugin")
	w.writeConfig(`
[plugins.file]
path = "` + plugin + `"
sha256 = "` + sha256File(t, plugin) + `"
args = ["-dir", "%ROOT%/creds/plugin"]

[profiles.app]
backend = "file:%ROOT%/creds/app/cred.json"
[profiles.app.docker]
server_urls = ["registry.example.com"]
[profiles.app.git]
host = "git.example.com"
username = "deploy"

[profiles.plug]
backend = "plugin:file:plug.json"
[profiles.plug.docker]
server_urls = ["plugin.example.com"]

[profiles.dev]
backend = "file:%ROOT%/creds/dev/cred.json"
issuer = "dev:` + srv.Addr() + `"

[profiles.oauth]
backend = "file:%ROOT%/creds/oauth/cred.json"
issuer = "oauth2:` + srv.TokenURL() + `"
client_id = "` + srv.ClientID() + `"
client_secret_env = "HYG_CLIENT_SECRET"

[profiles.short]
backend = "file:%ROOT%/creds/short/cred.json"
issuer = "dev:` + srv.Addr() + `"
min_validity = "1s"
`)
	appFile := w.credFile(filepath.Join(w.creds, "app", "cred.json"))
	w.credFile(filepath.Join(w.creds, "plugin", "plug.json"))
	w.writePair("dev", filepath.Join(w.creds, "dev", "cred.json"), w.mint("dev first", srv, time.Hour))
	w.writePair("oauth", filepath.Join(w.creds, "oauth", "cred.json"), w.mint("oauth first", srv, time.Hour))
	debug := []string{"CREDHELPER_LOG_LEVEL=debug"}

	// put, directly and through the plugin; get, status, env, exec.
	w.exec("put app", opts{stdin: recordJSON(appAuth, appRefresh, 0), env: debug}, "put", "--profile", "app").want(t, 0).wantErr(t, "stored generation")
	w.exec("put plug", opts{stdin: recordJSON(plugAuth, plugRefr, 0), env: debug}, "put", "--profile", "plug").want(t, 0)
	r := w.exec("get app", opts{env: debug}, "get", "--profile", "app").want(t, 0)
	if r.stdout.text != appAuth+"\n" {
		t.Errorf("get app printed %q", r.stdout.text)
	}
	r.stdout.allow(appAuth)
	w.exec("get plug", opts{env: debug}, "get", "--profile", "plug").want(t, 0).wantOut(t, plugAuth).stdout.allow(plugAuth)
	w.exec("status", opts{env: debug}, "status", "--profile", "app").want(t, 0).wantOut(t, "generation:")
	r = w.exec("status --json", opts{}, "status", "--profile", "app", "--json").want(t, 0)
	var st struct {
		Fingerprint string `json:"authTokenSHA256"`
	}
	jsonField(t, "status --json", r.stdout.text, &st)
	if st.Fingerprint == "" {
		t.Errorf("status --json has no fingerprint: %s", r.stdout.text)
	}
	w.exec("status plug", opts{}, "status", "--profile", "plug").want(t, 0)
	for _, f := range []string{"sh", "dotenv", "json"} {
		w.exec("env "+f, opts{}, "env", "--profile", "app", "--format", f, "--expiry-var", "HYG_EXPIRES").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	}
	r = w.exec("exec", opts{env: debug}, "exec", "--profile", "app", "--", "sh", "-c", `printf %s "$MOMENTO_API_KEY"; sleep 0.3`).want(t, 0)
	if r.stdout.text != appAuth {
		t.Errorf("exec child printed %q", r.stdout.text)
	}
	r.stdout.allow(appAuth)
	w.exec("exec, failing child", opts{}, "exec", "--profile", "app", "--", "sh", "-c", "exit 3").want(t, 3)
	w.exec("exec, missing command", opts{}, "exec", "--profile", "app", "--", "/nonexistent/cmd").want(t, 127)

	w.exec("version", opts{}, "version").want(t, 0)
	w.exec("--help", opts{}, "--help").want(t, 0)
	w.exec("completion bash", opts{}, "completion", "bash").want(t, 0)

	// The faces: kubectl, docker, git.
	w.exec("kubectl", opts{env: debug}, "kubectl", "--profile", "app").want(t, 0).wantOut(t, `"token":"`+appAuth+`"`).stdout.allow(appAuth)
	w.exec("kubectl v1beta1", opts{env: []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}`}},
		"kubectl", "--profile", "app").want(t, 0).wantOut(t, "v1beta1").stdout.allow(appAuth)
	dockerGet := func(name, url, token string, env ...string) {
		t.Helper()
		r := w.exec(name, opts{bin: "docker-credential-credhelper", stdin: url + "\n", env: env}, "get").want(t, 0).wantOut(t, `"Secret":"`+token+`"`)
		r.stdout.allow(token)
	}
	dockerGet("docker get", "registry.example.com", appAuth, debug...)
	dockerGet("docker get (plugin)", "https://plugin.example.com/v2/", plugAuth)
	w.exec("credhelper docker get", opts{stdin: "registry.example.com"}, "docker", "get").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	w.exec("docker list", opts{bin: "docker-credential-credhelper"}, "list").want(t, 0).wantOut(t, "registry.example.com")
	w.exec("docker version", opts{bin: "docker-credential-credhelper"}, "version").want(t, 0)
	w.exec("docker store (back what get gave)", opts{bin: "docker-credential-credhelper",
		stdin: `{"ServerURL":"registry.example.com","Username":"<token>","Secret":"` + appAuth + `"}`}, "store").want(t, 0)
	login := w.secret("docker login password", otherSecret, "HYGIENE-DOCKERLOGIN-61aa0c93")
	w.exec("docker store (a login)", opts{bin: "docker-credential-credhelper",
		stdin: `{"ServerURL":"registry.example.com","Username":"bob","Secret":"` + login + `"}`}, "store").want(t, 1).wantOut(t, "credhelper put")
	w.exec("docker store (unmapped)", opts{bin: "docker-credential-credhelper",
		stdin: `{"ServerURL":"other.example.com","Username":"bob","Secret":"` + login + `"}`}, "store").want(t, 1)
	w.exec("docker erase", opts{bin: "docker-credential-credhelper", stdin: "registry.example.com"}, "erase").want(t, 1)
	w.exec("docker get (unmapped)", opts{bin: "docker-credential-credhelper", stdin: "nowhere.example.com", env: debug}, "get").want(t, 1).wantOut(t, "credentials not found")
	w.exec("docker get (bad input)", opts{bin: "docker-credential-credhelper", stdin: "ftp://" + login, env: debug}, "get").want(t, 1)

	gitReq := "protocol=https\nhost=git.example.com\n\n"
	w.exec("git get", opts{bin: "git-credential-credhelper", stdin: gitReq, env: debug}, "get").want(t, 0).wantOut(t, "password="+appAuth+"\n").stdout.allow(appAuth)
	w.exec("credhelper git get", opts{stdin: gitReq}, "git", "get").want(t, 0).wantOut(t, "username=deploy").stdout.allow(appAuth)
	w.exec("git store", opts{bin: "git-credential-credhelper", stdin: "protocol=https\nhost=git.example.com\nusername=deploy\npassword=" + appAuth + "\n\n", env: debug}, "store").want(t, 0)
	w.exec("git erase", opts{bin: "git-credential-credhelper", stdin: gitReq, env: debug}, "erase").want(t, 0)
	w.exec("git get (no match)", opts{bin: "git-credential-credhelper", stdin: "protocol=https\nhost=elsewhere.example.com\n\n", env: debug}, "get").want(t, 0).wantErr(t, "no credhelper profile matches")
	w.exec("git get (malformed)", opts{bin: "git-credential-credhelper", stdin: "password=" + login + "\nno-equals-sign\n", env: debug}, "get").want(t, 0)

	// Refresh through the dev issuer, over the Momento protocol and OAuth2,
	// and mint pairs with generate.
	devFile := filepath.Join(w.creds, "dev", "cred.json")
	w.exec("refresh --force dev", opts{env: debug}, "refresh", "--profile", "dev", "--force").want(t, 0).wantOut(t, "generation:   1")
	devPair := w.readPair("dev refreshed", devFile)
	w.exec("get dev", opts{env: debug}, "get", "--profile", "dev").want(t, 0).wantOut(t, devPair.AuthToken).stdout.allow(devPair.AuthToken)
	w.exec("refresh dev (not due)", opts{env: debug}, "refresh", "--profile", "dev").want(t, 0)
	w.exec("refresh --force oauth", opts{env: debug}, "refresh", "--profile", "oauth", "--force").want(t, 0).wantOut(t, "generation:   1")
	oauthPair := w.readPair("oauth refreshed", filepath.Join(w.creds, "oauth", "cred.json"))
	w.exec("get oauth", opts{}, "get", "--profile", "oauth").want(t, 0).stdout.allow(oauthPair.AuthToken)

	session := []string{"HYG_SESSION=" + srv.SessionToken(), "CREDHELPER_LOG_LEVEL=debug"}
	r = w.exec("generate --out -", opts{env: session}, "generate", "--issuer", "dev:"+srv.Addr(), "--session-token-env", "HYG_SESSION", "--ttl", "1h", "--out", "-").want(t, 0)
	gen := w.recordFromJSON("generated --out -", r.stdout.text)
	r.stdout.allow(gen.AuthToken, gen.RefreshToken)
	genFile := w.credFile(filepath.Join(w.creds, "gen", "cred.json"))
	w.exec("generate (stored)", opts{env: session}, "generate", "--backend", "file:"+genFile, "--issuer", "dev:"+srv.Addr(), "--session-token-env", "HYG_SESSION", "--ttl", "1h").want(t, 0).wantErr(t, "generated and stored")
	w.readPair("generated and stored", genFile)

	// Failing variants: bad input, missing file, wrong endpoint, an issuer
	// that refuses or is unreachable, wrong session token and client
	// secret, bad KUBERNETES_EXEC_INFO, missing config.
	badAuth := w.secret("bad put auth", otherSecret, "HYGIENE-AUTH-BADPUT-0b5e")
	badRefresh := w.secret("bad put refresh", otherSecret, "HYGIENE-REFRESH-BADPUT-77c1")
	w.exec("put (validUntil not a number)", opts{stdin: `{"apiKey":"` + badAuth + `","refreshToken":"` + badRefresh + `","validUntil":"soon"}`, env: debug}, "put", "--profile", "app").want(t, 2)
	w.exec("put (truncated JSON)", opts{stdin: `{"apiKey":"` + badAuth + `","refreshToken":"` + badRefresh, env: debug}, "put", "--profile", "app").want(t, 2)
	w.exec("put (not JSON)", opts{stdin: badAuth + " " + badRefresh, env: debug}, "put", "--profile", "app").want(t, 2)
	w.exec("put (expired)", opts{stdin: recordJSON(badAuth, badRefresh, 1000), env: debug}, "put", "--profile", "app").want(t, 2)
	w.exec("put (wrong endpoint)", opts{stdin: recordJSON(badAuth, badRefresh, 0), env: debug}, "put", "--profile", "app", "--endpoint", "cell-9.example.com").want(t, 2)
	w.exec("get (missing file)", opts{env: debug}, "get", "--backend", "file:"+filepath.Join(w.creds, "missing.json")).want(t, 1)
	w.exec("get (wrong endpoint)", opts{env: debug}, "get", "--profile", "app", "--endpoint", "cell-9.example.com").want(t, 1)
	w.exec("kubectl (wrong endpoint)", opts{env: debug}, "kubectl", "--profile", "app", "--endpoint", "cell-9.example.com").want(t, 1)
	w.exec("env (wrong endpoint)", opts{env: debug}, "env", "--profile", "app", "--endpoint", "cell-9.example.com").want(t, 1)
	w.exec("exec (wrong endpoint)", opts{env: debug}, "exec", "--profile", "app", "--endpoint", "cell-9.example.com", "--", "true").want(t, 1)
	w.exec("docker get (wrong endpoint)", opts{bin: "docker-credential-credhelper", stdin: "registry.example.com", env: []string{"CREDHELPER_ENDPOINT=cell-9.example.com"}}, "get").want(t, 1)
	w.exec("git get (wrong endpoint)", opts{bin: "git-credential-credhelper", stdin: gitReq, env: []string{"CREDHELPER_ENDPOINT=cell-9.example.com", "CREDHELPER_LOG_LEVEL=debug"}}, "get").want(t, 0)
	w.exec("kubectl (bad exec info)", opts{env: []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v2"}`}}, "kubectl", "--profile", "app").want(t, 1)

	rejFile := filepath.Join(w.creds, "rejected", "cred.json")
	w.writePair("rejected", rejFile, provider.Pair{AuthToken: "HYGIENE-AUTH-REJECTED-5a0c", RefreshToken: "HYGIENE-REFRESH-REJECTED-e9d2", ValidUntil: time.Now().Add(time.Hour)})
	w.exec("refresh (issuer refuses)", opts{env: debug}, "refresh", "--force", "--backend", "file:"+rejFile, "--issuer", "dev:"+srv.Addr()).want(t, 1)
	w.exec("status (lineage broken)", opts{env: debug}, "status", "--backend", "file:"+rejFile).want(t, 1)
	// An OAuth2 issuer with reuse detection revokes the family's access
	// tokens too, so a broken lineage is an error at once (a Momento key
	// would be served until it expires).
	w.exec("get (lineage broken)", opts{env: debug}, "get", "--backend", "file:"+rejFile, "--issuer", "oauth2:"+srv.TokenURL(), "--client-id", srv.ClientID(), "--client-secret-env", "HYG_CLIENT_SECRET").want(t, 1).wantErr(t, "lineage")

	downFile := filepath.Join(w.creds, "down", "cred.json")
	w.writePair("unreachable", downFile, w.mint("unreachable", srv, time.Hour))
	w.exec("refresh (issuer unreachable)", opts{env: debug}, "refresh", "--force", "--backend", "file:"+downFile, "--issuer", "dev:127.0.0.1:1", "--issuer-timeout", "2s", "--lease", "6s").want(t, 1)
	w.exec("refresh (oauth2 unreachable)", opts{env: debug}, "refresh", "--force", "--backend", "file:"+downFile, "--issuer", "oauth2:http://127.0.0.1:1/token", "--client-id", "x", "--client-secret-env", "HYG_CLIENT_SECRET", "--issuer-timeout", "2s", "--lease", "6s").want(t, 1)
	oauthBad := filepath.Join(w.creds, "oauthbad", "cred.json")
	w.writePair("oauth wrong secret", oauthBad, w.mint("oauth wrong secret", srv, time.Hour))
	wrongSecret := w.secret("wrong client secret", otherSecret, "HYGIENE-CLIENTSECRET-WRONG-3f9a")
	w.exec("refresh (oauth2 wrong client secret)", opts{env: []string{"HYG_CLIENT_SECRET=" + wrongSecret, "CREDHELPER_LOG_LEVEL=debug"}},
		"refresh", "--force", "--profile", "oauth", "--backend", "file:"+oauthBad).want(t, 1)
	wrongSession := w.secret("wrong session token", otherSecret, "HYGIENE-SESSION-WRONG-c2e4")
	w.exec("generate (wrong session token)", opts{env: []string{"HYG_SESSION=" + wrongSession, "CREDHELPER_LOG_LEVEL=debug"}},
		"generate", "--issuer", "dev:"+srv.Addr(), "--session-token-env", "HYG_SESSION", "--ttl", "1h", "--out", "-").want(t, 1)
	w.exec("config missing", opts{env: []string{"CREDHELPER_CONFIG=" + filepath.Join(w.root, "nope.toml")}}, "get", "--profile", "app").want(t, 2)
	w.exec("unknown profile", opts{}, "get", "--profile", "nope").want(t, 2)

	// The agent, with every profile, the plugin and a short-lived pair it
	// refreshes; every face asks through it.
	shortFile := filepath.Join(w.creds, "short", "cred.json")
	w.writePair("short", shortFile, w.mint("short first", srv, 6*time.Second))
	agentEnv := []string{"CREDHELPER_NO_AGENT=\x00unset"}
	// Every generation the agent stores is registered while it is
	// current (each lives for seconds; the poll takes milliseconds).
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			if b, err := os.ReadFile(shortFile); err == nil {
				if rec, err := provider.DecodeRecord(b); err == nil {
					w.pair("short (agent)", rec.Pair)
				}
			}
			select {
			case <-stopPoll:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	metricsAddr := freeLoopbackAddr(t)
	agent := w.command("agent", opts{env: agentEnv}, "agent", "--log-level", "debug", "--metrics-addr", metricsAddr)
	w.start(agent)
	sock := filepath.Join(w.run, "credhelper", "agent.sock")
	waitFor(t, "the agent's socket", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	viaAgent := func(name string, o opts, args ...string) *result {
		o.env = append(o.env, agentEnv...)
		return w.exec(name+" (agent)", o, args...)
	}
	viaAgent("get app", opts{}, "get", "--profile", "app").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	viaAgent("get plug", opts{}, "get", "--profile", "plug").want(t, 0).wantOut(t, plugAuth).stdout.allow(plugAuth)
	viaAgent("docker get", opts{bin: "docker-credential-credhelper", stdin: "registry.example.com"}, "get").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	viaAgent("git get", opts{bin: "git-credential-credhelper", stdin: gitReq}, "get").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	viaAgent("env", opts{}, "env", "--profile", "plug").want(t, 0).wantOut(t, plugAuth).stdout.allow(plugAuth)
	viaAgent("exec", opts{}, "exec", "--profile", "app", "--", "sh", "-c", `printf %s "$MOMENTO_API_KEY"; sleep 0.2`).want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	viaAgent("get (wrong endpoint)", opts{}, "get", "--profile", "app", "--endpoint", "cell-9.example.com").want(t, 1)
	// The agent refreshes the short-lived pair; every generation it
	// stores is registered while it is current.
	waitFor(t, "the agent to refresh the short-lived pair", 20*time.Second, func() bool {
		return w.readPair("short (agent)", shortFile).Generation >= 1
	})
	r = viaAgent("kubectl short", opts{}, "kubectl", "--profile", "short").want(t, 0)
	allowRegistered(t, w, r.stdout, "short")
	r = viaAgent("get short", opts{}, "get", "--profile", "short").want(t, 0)
	allowRegistered(t, w, r.stdout, "short")
	// The socket protocol itself, raw: the refresh token never leaves the
	// agent, and nothing a request carries is echoed.
	cfgPath := filepath.Join(w.config, "credhelper", "config.toml")
	bogus := "no-such-profile-or-op"
	for _, req := range []string{
		`{"v":1,"op":"get","profile":"app","config":"` + cfgPath + `"}`,
		`{"v":1,"op":"get","profile":"short","config":"` + cfgPath + `"}`,
		`{"v":1,"op":"get","profile":"app","config":"/elsewhere/config.toml"}`,
		`{"v":1,"op":"get","profile":"nope","config":"` + cfgPath + `"}`,
		`{"v":1,"op":"get","profile":"app","config":"` + cfgPath + `","endpoint":"cell-9.example.com"}`,
		`{"v":1,"op":"status"}`,
		`{"v":1,"op":"ping"}`,
		`{"v":1,"op":"` + bogus + `"}`,
		`{"v":1,"op":"get","profile":"` + bogus + `"}`,
		`not json ` + bogus,
	} {
		resp := w.record("agent socket answer to "+req, agentRoundTrip(t, sock, req))
		if strings.Contains(req, `"profile":"app","config":"`+cfgPath+`"}`) {
			resp.allow(appAuth)
			if !strings.Contains(resp.text, appAuth) {
				t.Errorf("agent get app: %s", resp.text)
			}
		}
		if strings.Contains(req, `"short"`) {
			allowRegistered(t, w, resp, "short")
		}
	}
	w.record("agent /metrics", httpGet(t, "http://"+metricsAddr+"/metrics"))
	ar := w.terminate(agent).want(t, 0)
	close(stopPoll)
	<-polled
	w.readPair("short (agent, final)", shortFile)
	if !strings.Contains(ar.stderr.text, "level=DEBUG") {
		t.Errorf("the agent logged nothing at debug level: the search of its log proves little:\n%s", ar.stderr.text)
	}

	// The sampler saw the children's children: exec's child and the
	// plugin processes.
	w.mu.Lock()
	var sawChild, sawPlugin bool
	for line := range w.cmdlines {
		sawChild = sawChild || strings.Contains(line, `printf %s "$MOMENTO_API_KEY"`)
		sawPlugin = sawPlugin || strings.Contains(line, "fileplugin")
	}
	n := len(w.cmdlines)
	w.mu.Unlock()
	if !sawChild || !sawPlugin {
		t.Errorf("command lines sampled: exec's child %v, plugin %v; want both", sawChild, sawPlugin)
	}
	t.Logf("sampled %d distinct command lines", n)
	if b, err := os.ReadFile(appFile); err != nil || !strings.Contains(string(b), appAuth) {
		t.Errorf("the app credential file lost its pair: %v", err)
	}
	w.verify()
}

// allowRegistered lets s carry the auth token it holds if that token is
// one registered for label (a generation the agent minted).
func allowRegistered(t *testing.T, w *world, s *stream, label string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for v, sec := range w.secrets {
		if sec.kind == authToken && strings.HasPrefix(sec.label, label) && strings.Contains(s.text, v) {
			s.allowed[v] = true
			return
		}
	}
	t.Errorf("%s holds none of the %s auth tokens: %q", s.where, label, s.text)
}

// agentRoundTrip sends one request line on the agent's socket and returns
// the raw answer.
func agentRoundTrip(t *testing.T, sock, line string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	b, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("agent answer to %s: %v (got %q)", line, err, b)
	}
	return b
}

// httpGet returns the body at url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// freeLoopbackAddr returns a loopback address nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
