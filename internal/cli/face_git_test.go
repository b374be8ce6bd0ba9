package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// gitEnv is the world's environment made safe for the real git: no system
// or global configuration, no prompts, and the binary's directory on PATH
// (for the git-credential-credhelper symlink).
func gitEnv(t *testing.T, w *faceWorld) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(w.dir, "home"), 0o700); err != nil {
		t.Fatal(err)
	}
	env := append([]string{}, w.env...)
	return append(env,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(w.dir, "home", "gitconfig"),
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
}

// runGit runs the real git.
func runGit(t *testing.T, env []string, dir, stdin string, args ...string) procResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("git %v: %v (is git installed?)", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("git %v hung: %s", args, errb.String())
	}
	return procResult{code, out.String(), errb.String()}
}

// helperFlag makes the built binary git's only credential helper.
func helperFlag() []string {
	return []string{"-c", "credential.helper=", "-c", "credential.helper=!" + filepath.Join(binDir, "credhelper") + " git"}
}

func TestGitCredentialFillApproveReject(t *testing.T) {
	srv, minted := startDev(t)
	w := newFaceWorld(t, fmt.Sprintf(`
[profiles.git]
backend = "file:%%DIR%%/git.json"
[profiles.git.git]
host = "git.example.com"
username = "deploy"

[profiles.team]
backend = "file:%%DIR%%/team.json"
issuer = "dev:%s"
[profiles.team.git]
host = "git.example.com"
path = "org/team"

[profiles.broken]
backend = "file:%%DIR%%/missing.json"
[profiles.broken.git]
host = "broken.example.com"
`, srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "git.json"), neverPair())
	writeRecord(t, filepath.Join(w.dir, "team.json"), minted)
	env := gitEnv(t, w)

	fill := append(helperFlag(), "credential", "fill")
	r := runGit(t, env, w.dir, "protocol=https\nhost=git.example.com\n\n", fill...)
	want := "protocol=https\nhost=git.example.com\nusername=deploy\npassword=" + faceToken + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("git credential fill: exit %d\nstdout %q\nwant   %q\nstderr %s", r.code, r.stdout, want, r.stderr)
	}
	// git stores and erases through every helper after use; ours ignores
	// both and must not break them.
	for _, action := range []string{"approve", "reject"} {
		r2 := runGit(t, env, w.dir, r.stdout+"\n", append(helperFlag(), "credential", action)...)
		if r2.code != 0 || r2.stdout != "" {
			t.Errorf("git credential %s: %+v", action, r2)
		}
		noFaceSecrets(t, "git credential "+action, r2.stderr)
	}
	// The git-credential-credhelper symlink found on PATH.
	r = runGit(t, env, w.dir, "url=https://git.example.com/other/repo.git\n\n", "-c", "credential.helper=", "-c", "credential.helper=credhelper", "credential", "fill")
	if r.code != 0 || !strings.Contains(r.stdout, "password="+faceToken+"\n") {
		t.Errorf("credential.helper=credhelper: %+v", r)
	}
	// Path matching needs useHttpPath; the expiring profile answers with
	// its expiry (git 2.39 does not pass password_expiry_utc on, so the
	// binary is asked directly as well).
	r = runGit(t, env, w.dir, "url=https://git.example.com/org/team/app.git\n\n", append([]string{"-c", "credential.useHttpPath=true"}, fill...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "password="+minted.AuthToken+"\n") {
		t.Errorf("path-matched fill: exit %d, stderr %s", r.code, r.stderr)
	}
	b := runBin(t, env, "protocol=https\nhost=git.example.com\npath=org/team/app.git\n", "credhelper", "git", "get")
	wantB := "username=credhelper\npassword=" + minted.AuthToken + "\npassword_expiry_utc=" + strconv.FormatInt(minted.ValidUntil.Add(-time.Minute).Unix(), 10) + "\n" // min_validity before it expires
	if b.code != 0 || b.stdout != wantB {
		t.Errorf("credhelper git get (expiring): %+v", b)
	}

	// Nothing to say: no match, bad input, an unusable backend, unknown
	// actions. The helper prints nothing and exits 0; git then fails
	// cleanly because it may not prompt.
	for _, in := range []string{"protocol=https\nhost=github.com\n\n", "protocol=http\nhost=git.example.com\n\n", "protocol=https\nhost=broken.example.com\n\n"} {
		r := runGit(t, env, w.dir, in, fill...)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "terminal prompts disabled") {
			t.Errorf("fill %q: %+v, want git to fail for lack of a credential", in, r)
		}
		noFaceSecrets(t, "failed fill", r.stderr)
	}
	for _, tc := range []struct{ in, action, stderr string }{
		{"protocol=https\nhost=github.com\n", "get", ""},
		{"garbage without equals\n", "get", ""},
		{"protocol=https\nhost=" + strings.Repeat("h", 70000) + "\n", "get", ""},
		{"protocol=https\nhost=git.example.com\x00\n", "get", ""},
		{"protocol=https\nhost=git.example.com\npassword=" + faceToken + "\n", "store", ""},
		{"protocol=https\nhost=git.example.com\n", "erase", ""},
		{"protocol=https\nhost=git.example.com\n", "frobnicate", ""},
		{"protocol=https\nhost=broken.example.com\n", "get", "WARN"},
	} {
		r := runBin(t, env, tc.in, "credhelper", "git", tc.action)
		if r.code != 0 || r.stdout != "" || (tc.stderr == "") != (r.stderr == "") || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("git %s %.30q: %+v", tc.action, tc.in, r)
		}
		noFaceSecrets(t, "credhelper git", r.stderr)
	}
	r = runBin(t, append(env, "CREDHELPER_LOG_LEVEL=debug"), "protocol=https\nhost=github.com\n", "git-credential-credhelper", "get")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no credhelper profile matches") {
		t.Errorf("no match at debug level: %+v", r)
	}
}

// gitServer serves the bare repositories under root through the real
// git http-backend (CGI), requiring HTTP Basic auth with the password
// token.
func gitServer(t *testing.T, root, token string) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git is not installed: apt-get install git")
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	var ok, denied atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, has := r.BasicAuth()
		if !has || pass != token || user != "deploy" {
			denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="credhelper test"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		ok.Add(1)
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &ok, &denied
}

func TestGitCloneOverHTTP(t *testing.T) {
	w := newFaceWorld(t, "")
	env := gitEnv(t, w)
	root := filepath.Join(w.dir, "repos")
	src := filepath.Join(w.dir, "src")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", src},
		{"-C", src, "commit", "-q", "--allow-empty", "-m", "first"},
		{"clone", "-q", "--bare", src, filepath.Join(root, "repo.git")},
	} {
		if r := runGit(t, env, w.dir, "", args...); r.code != 0 {
			t.Fatalf("git %v: %s", args, r.stderr)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, ok, denied := gitServer(t, root, faceToken)
	host := strings.TrimPrefix(srv.URL, "http://")

	profile := func(h string) string {
		return fmt.Sprintf("[profiles.git]\nbackend = \"file:%s\"\n[profiles.git.git]\nprotocol = \"http\"\nhost = %q\nusername = \"deploy\"\n", filepath.Join(w.dir, "git.json"), h)
	}
	writeRecord(t, filepath.Join(w.dir, "git.json"), neverPair())
	if err := os.WriteFile(w.config, []byte(profile(host)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runGit(t, env, w.dir, "", append(helperFlag(), "clone", "-q", srv.URL+"/repo.git", "good")...)
	if r.code != 0 {
		t.Fatalf("clone with credhelper: exit %d: %s", r.code, r.stderr)
	}
	if log := runGit(t, env, filepath.Join(w.dir, "good"), "", "log", "--format=%s"); strings.TrimSpace(log.stdout) != "first" {
		t.Errorf("cloned history: %q", log.stdout)
	}
	if ok.Load() == 0 || denied.Load() == 0 {
		t.Errorf("server saw %d authenticated and %d refused requests; want git to be challenged, then authenticated", ok.Load(), denied.Load())
	}
	noFaceSecrets(t, "clone", r.stderr)

	// No matching profile (another port): git gets nothing from the
	// helper, may not prompt, and the clone fails cleanly.
	if err := os.WriteFile(w.config, []byte(profile("127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runGit(t, env, w.dir, "", append(helperFlag(), "clone", "-q", srv.URL+"/repo.git", "bad")...)
	if r.code == 0 || !strings.Contains(r.stderr, "could not read Username") {
		t.Errorf("clone without a matching profile: exit %d, stderr %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "bad")); err == nil {
		t.Error("a failed clone left its directory behind")
	}
	// A matching profile whose token the server refuses: git rejects it
	// (our erase is a no-op) and fails without showing the token.
	writeRecord(t, filepath.Join(w.dir, "git.json"), pairWithToken("WRONG-"+faceToken))
	if err := os.WriteFile(w.config, []byte(profile(host)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runGit(t, env, w.dir, "", append(helperFlag(), "clone", "-q", srv.URL+"/repo.git", "wrong")...)
	if r.code == 0 || !strings.Contains(r.stderr, "Authentication failed") {
		t.Errorf("clone with a refused token: exit %d, stderr %s", r.code, r.stderr)
	}
	noFaceSecrets(t, "refused clone", r.stderr)
}

// pairWithToken is a never-expiring pair with the given auth token.
func pairWithToken(tok string) provider.Pair {
	p := neverPair()
	p.AuthToken = tok
	return p
}
