package cli

// Issue 19, "the first fifteen minutes": each numbered case as a test of
// the built binary, with the exact message and exit status a newcomer sees.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// hangingIssuer is a loopback TCP listener that accepts connections, reads
// what is sent and never answers: an issuer call to it is in flight, and may
// have been delivered, until the caller gives up. accepted receives one
// value per connection.
func hangingIssuer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), ch
}

// started is a credhelper process the test talks to while it runs.
type started struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string // stderr, line by line
	out    chan string // stdout, line by line
	done   chan struct{}
	mu     sync.Mutex
	stderr strings.Builder // guarded by mu; complete once done is closed
	code   int
}

// stderrSoFar returns what the process wrote on standard error so far.
func (s *started) stderrSoFar() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// startWatched starts the built binary with env; every test that starts one
// waits for it with its own deadline (wait), and the cleanup kills it.
func startWatched(t *testing.T, env []string, args ...string) *started {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "credhelper"), args...)
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	or, ow := io.Pipe()
	cmd.Stdout = ow
	s := &started{t: t, cmd: cmd, lines: make(chan string, 64), out: make(chan string, 64), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(or)
		for sc.Scan() {
			select {
			case s.out <- sc.Text():
			default:
			}
		}
	}()
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		ow.Close()
		<-scanned
		s.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	return s
}

// signal sends sig to the process.
func (s *started) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitLine waits up to d for a stderr line that starts with prefix.
func (s *started) waitLine(prefix string, d time.Duration) string {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case line := <-s.lines:
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-deadline:
			s.t.Fatalf("no stderr line starting with %q within %v; stderr so far:\n%s", prefix, d, s.stderrSoFar())
		}
	}
}

// wait waits up to d for the process to exit and returns its status and
// stderr.
func (s *started) wait(d time.Duration) (int, string) {
	s.t.Helper()
	select {
	case <-s.done:
		return s.code, s.stderrSoFar()
	case <-time.After(d):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("still running after %v; stderr:\n%s", d, s.stderrSoFar())
	}
	return 0, ""
}

// hangWorld is a pair that needs a refresh now (30 s left, under the
// default one-minute minimum validity) and the arguments that refresh it
// through an OAuth2 issuer that accepts and never answers.
func hangWorld(t *testing.T) (w *faceWorld, args []string, accepted <-chan struct{}) {
	w = newFaceWorld(t, "")
	addr, accepted := hangingIssuer(t)
	path := filepath.Join(w.dir, "hang.json")
	writeRecord(t, path, provider.Pair{AuthToken: faceToken, RefreshToken: faceRefresh, ValidUntil: time.Now().Add(30 * time.Second).Truncate(time.Second)})
	return w, []string{"get", "--backend", "file:" + path, "--issuer", "oauth2:http://" + addr + "/token", "--client-id", "x",
		"--lease", "20s", "--issuer-timeout", "3s"}, accepted
}

func waitAccepted(t *testing.T, accepted <-chan struct{}) {
	t.Helper()
	select {
	case <-accepted:
	case <-time.After(20 * time.Second):
		t.Fatal("the issuer call never reached the hanging issuer")
	}
}

// Case 1: the first SIGINT while the issuer may be answering says so on one
// line, waits for that call (up to its deadline, 3 s from its start; no
// retry is started after the signal), then exits 130.
func TestInterruptWaitsForIssuerCall(t *testing.T) {
	w, args, accepted := hangWorld(t)
	p := startWatched(t, w.env, args...)
	waitAccepted(t, accepted)
	sent := time.Now()
	p.signal(syscall.SIGINT)
	key := filepath.Join(w.dir, "hang.json")
	line := p.waitLine("credhelper: interrupted", 5*time.Second)
	// The wait lasts until the call's deadline (--issuer-timeout 3s from
	// when it started), and no second call is started after the signal.
	want := regexp.MustCompile("^credhelper: interrupted while the issuer may be answering a refresh of " + regexp.QuoteMeta(key) + `: waiting up to [1-3]s for it so the new pair is saved \(interrupt again to stop now\)$`)
	if !want.MatchString(line) {
		t.Errorf("stderr line\n got %s\nwant %s", line, want)
	}
	code, stderr := p.wait(20 * time.Second)
	if code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, stderr)
	}
	if waited := time.Since(sent); waited > 5*time.Second {
		t.Errorf("exited %v after the signal, past the issuer call's deadline", waited)
	}
	if !strings.HasSuffix(stderr, "credhelper: interrupted\n") {
		t.Errorf("stderr does not end with the one-word reason:\n%s", stderr)
	}
	noFaceSecrets(t, "stderr", stderr)
}

// Case 1: a second signal ends the wait at once.
func TestSecondInterruptStopsNow(t *testing.T) {
	w, args, accepted := hangWorld(t)
	p := startWatched(t, w.env, args...)
	waitAccepted(t, accepted)
	p.signal(syscall.SIGINT)
	p.waitLine("credhelper: interrupted while", 5*time.Second)
	sent := time.Now()
	p.signal(syscall.SIGINT)
	code, stderr := p.wait(10 * time.Second)
	if code != 130 {
		t.Errorf("exit %d, want 130", code)
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("the second signal took %v to end the process", took)
	}
	if !strings.HasSuffix(stderr, "credhelper: interrupted again: stopping now, without waiting\n") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// Case 1: SIGTERM is the same, with 143.
func TestSIGTERMExits143(t *testing.T) {
	w, args, accepted := hangWorld(t)
	p := startWatched(t, w.env, args...)
	waitAccepted(t, accepted)
	p.signal(syscall.SIGTERM)
	p.waitLine("credhelper: SIGTERM received while the issuer may be answering a refresh of ", 5*time.Second)
	p.signal(syscall.SIGTERM)
	code, stderr := p.wait(10 * time.Second)
	if code != 143 || !strings.HasSuffix(stderr, "credhelper: SIGTERM received again: stopping now, without waiting\n") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// Case 1: a command stuck in something that cannot be cancelled (put
// reading a terminal) still ends at the first signal.
func TestInterruptWhileReadingStdin(t *testing.T) {
	w := newFaceWorld(t, "")
	// A signal that arrives before the program has set up its handler
	// kills it the default way; then it is tried again, later.
	for wait := 300 * time.Millisecond; ; wait *= 2 {
		cmd := exec.Command(filepath.Join(binDir, "credhelper"), "put", "--backend", "file:"+filepath.Join(w.dir, "c.json"))
		cmd.Env = w.env
		stdin, err := cmd.StdinPipe() // held open: put waits for more
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(wait)
		sent := time.Now()
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("put did not end after SIGINT")
		}
		stdin.Close()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && wait < 5*time.Second {
			continue // too early
		}
		if code := cmd.ProcessState.ExitCode(); code != 130 || stderr.String() != "credhelper: interrupted\n" {
			t.Errorf("exit %d, stderr %q; want 130 and one line", code, stderr.String())
		}
		if took := time.Since(sent); took > 3*time.Second {
			t.Errorf("took %v to end", took)
		}
		return
	}
}

// Case 1: a service stops on the first signal with its own status.
func TestServicesStopOnSignalWithTheirOwnStatus(t *testing.T) {
	w := newFaceWorld(t, "")
	p := startWatched(t, w.env, "dev-issuer", "--listen", "127.0.0.1:0")
	select {
	case <-p.out: // its addresses: it is serving
	case <-time.After(20 * time.Second):
		t.Fatal("dev-issuer printed nothing")
	}
	p.signal(syscall.SIGINT)
	if code, stderr := p.wait(10 * time.Second); code != 0 {
		t.Errorf("dev-issuer: exit %d after SIGINT, want 0 (a service stops cleanly); stderr:\n%s", code, stderr)
	}
}

// Case 2: a typo in one profile breaks only that profile, and says where it
// is and what was meant; config check lists every problem.
func TestTypoBreaksOnlyItsProfile(t *testing.T) {
	w := newFaceWorld(t, `[profiles.alpha]
backend = "file:%DIR%/alpha.json"
[profiles.alpha.docker]
server_urls = ["registry.example.com"]
[profiles.alpha.git]
host = "git.example.com"

[profiles.gamma]
backned = "x"
scopes = "read"
client_secret = "inline-secret-value"
`)
	writeRecord(t, filepath.Join(w.dir, "alpha.json"), neverPair())
	if r := runBin(t, w.env, "", "credhelper", "get", "--profile", "alpha"); r.code != 0 || r.stdout != faceToken+"\n" {
		t.Errorf("get --profile alpha: %+v", r)
	}
	if r := runBin(t, w.env, "registry.example.com", "docker-credential-credhelper", "get"); r.code != 0 || !strings.Contains(r.stdout, faceToken) {
		t.Errorf("docker face: %+v", r)
	}
	if r := runBin(t, w.env, "protocol=https\nhost=git.example.com\n\n", "credhelper", "git", "get"); r.code != 0 || !strings.Contains(r.stdout, "password="+faceToken) {
		t.Errorf("git face: %+v", r)
	}
	r := runBin(t, w.env, "", "credhelper", "get", "--profile", "gamma")
	want := fmt.Sprintf("credhelper: config: profile \"gamma\" cannot be used: %s:9: unknown setting backned in [profiles.gamma]: did you mean backend? (and 2 more: credhelper config check lists them)\n", w.config)
	if r.code != 2 || r.stderr != want {
		t.Errorf("get --profile gamma: exit %d, stderr\n got %q\nwant %q", r.code, r.stderr, want)
	}
	r = runBin(t, w.env, "", "credhelper", "config", "check")
	wantOut := strings.Join([]string{
		w.config + ":9: unknown setting backned in [profiles.gamma]: did you mean backend?",
		w.config + `:10: scopes in [profiles.gamma] must be a list of strings, not a string: write it as scopes = ["read"]`,
		w.config + ":11: client_secret in [profiles.gamma]: secrets are never written in the config file: name the variable that holds it with client_secret_env in [profiles.gamma.oauth2], or the file with client_secret_file in [profiles.gamma.oauth2]",
		w.config + ": 3 problem(s), 0 warning(s); a profile with a problem cannot be used, the others can",
	}, "\n") + "\n"
	if r.code != 1 || r.stdout != wantOut {
		t.Errorf("config check: exit %d, stdout\n got %s\nwant %s", r.code, r.stdout, wantOut)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, "inline-secret-value") {
			t.Errorf("config check repeats the inline secret: %s", out)
		}
	}
}

// Case 3: no config file at all.
func TestMissingConfigFile(t *testing.T) {
	w := newFaceWorld(t, "")
	env := append(w.env, "CREDHELPER_CONFIG=", "XDG_CONFIG_HOME="+filepath.Join(w.dir, "nowhere-xdg"))
	path := filepath.Join(w.dir, "nowhere-xdg", "credhelper", "config.toml")
	r := runBin(t, env, "", "credhelper", "get", "--profile", "alpha")
	want := "credhelper: config: no profile \"alpha\": there is no config file at " + path + "\n" +
		"  [profiles.alpha]\n" +
		"  backend = \"file:~/.config/credhelper/alpha.json\"\n" +
		"  issuer  = \"dev:127.0.0.1:7777\"\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("exit %d, stderr\n got %q\nwant %q", r.code, r.stderr, want)
	}
}

// Case 5: docker's help text says what README says.
func TestDockerHelpAgreesWithREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const rule = "Use `credHelpers`, not `credsStore`"
	if !strings.Contains(string(readme), rule) {
		t.Fatalf("README no longer says %q", rule)
	}
	w := newFaceWorld(t, "")
	r := runBin(t, w.env, "", "credhelper", "docker", "--help")
	help := strings.Join(strings.Fields(r.stdout), " ")
	if !strings.Contains(help, `name credhelper in "credHelpers" for the registries it serves, not in "credsStore"`) {
		t.Errorf("docker --help does not say to use credHelpers, not credsStore:\n%s", r.stdout)
	}
}

// Case 6: messages in the user's words, usage errors exit 2 with the usage
// line, and nothing said twice.
func TestMessagesInTheUsersWords(t *testing.T) {
	w := newFaceWorld(t, "")
	missing := filepath.Join(w.dir, "none.json")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bare", nil, 2, "Usage: credhelper COMMAND [flags]\nCommands: "},
		{"floor", []string{"get", "--backend", "file:" + missing, "--min-validity", "5s", "--refresh-floor", "5s"}, 2,
			"credhelper: --min-validity (5s) plus 1s must be less than --refresh-floor (5s), or pairs would expire before they are refreshed: lower the one or raise the other\n"},
		{"floor from the default", []string{"get", "--backend", "file:" + missing, "--min-validity", "5m"}, 2,
			"credhelper: --min-validity (5m0s) plus 1s must be less than the default refresh_floor (5m0s), or pairs would expire before they are refreshed: lower the one or raise the other\n"},
		{"oauth2 without client", []string{"get", "--backend", "file:" + missing, "--issuer", "oauth2:https://login.example.com/token"}, 2,
			"credhelper: --issuer oauth2:https://login.example.com/token needs a client id: pass --client-id or set client_id in [profiles.default.oauth2]\n"},
		{"exec without command", []string{"exec", "--profile", "alpha"}, 2,
			"credhelper: exec needs COMMAND [ARGS...]\nUsage: credhelper exec [flags] -- COMMAND [ARGS...]\n"},
		{"completion tcsh", []string{"completion", "tcsh"}, 2,
			"credhelper: completion: \"tcsh\" is not one of: bash, zsh, fish, powershell\nUsage: credhelper completion bash|zsh|fish|powershell [flags]\n"},
		{"single dash", []string{"get", "-profile", "alpha"}, 2,
			"credhelper: -profile is not a flag: long flags take two dashes: did you mean --profile?\nUsage: credhelper get [flags]\n"},
		{"misspelt flag", []string{"get", "--profle", "alpha"}, 2,
			"credhelper: unknown flag --profle: did you mean --profile?\nUsage: credhelper get [flags]\n"},
		{"misspelt command", []string{"gte"}, 2,
			"credhelper: unknown command \"gte\": did you mean get?\nUsage: credhelper COMMAND [flags]\n"},
		{"bad duration", []string{"get", "--min-validity", "soon"}, 2,
			"credhelper: --min-validity: \"soon\" is not a duration: write a number with a unit, such as 90s or 5m\nUsage: credhelper get [flags]\n"},
		{"bad variable", []string{"get"}, 2, "credhelper: $CREDHELPER_LEASE: \"long\" is not a duration: write a number with a unit, such as 90s or 5m\n"},
		{"said once, hint last", []string{"get", "--backend", "file:" + missing}, 1,
			"credhelper: file: no credential at " + missing + ": store one with 'credhelper put' or 'credhelper generate'\n"},
		{"status said once", []string{"status", "--backend", "file:" + missing}, 1,
			"credhelper: file: no credential at " + missing + ": store one with 'credhelper put' or 'credhelper generate'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := w.env
			if tt.name == "bad variable" {
				env = append(append([]string(nil), env...), "CREDHELPER_LEASE=long")
			}
			r := runBin(t, env, "", "credhelper", tt.args...)
			ok := r.stderr == tt.stderr
			if tt.name == "bare" {
				ok = strings.HasPrefix(r.stderr, tt.stderr) && strings.Count(r.stderr, "\n") == 3
			}
			if r.code != tt.code || !ok {
				t.Errorf("exit %d, stderr\n got %q\nwant %q (exit %d)", r.code, r.stderr, tt.stderr, tt.code)
			}
		})
	}
}

// Case 7: generate --out FILE creates it 0600 and never overwrites; a pair
// put from, or printed to, a file others can read gets one warning.
func TestGenerateOutAndPutWarn(t *testing.T) {
	srv, _ := startDev(t)
	w := newFaceWorld(t, "")
	env := append(w.env, "MOMENTO_SESSION_TOKEN="+srv.SessionToken())
	out := filepath.Join(w.dir, "pair.json")
	gen := []string{"generate", "--issuer", "dev:" + srv.Addr(), "--session-token-env", "MOMENTO_SESSION_TOKEN", "--ttl", "1h", "--out", out}
	r := runBin(t, env, "", "credhelper", gen...)
	if r.code != 0 || r.stderr != "credhelper: wrote generation 0 to "+out+" (mode 0600): store it with 'credhelper put < "+out+"'\n" {
		t.Fatalf("generate --out: %+v", r)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, %v; want 0600", out, fi.Mode(), err)
	}
	if r := runBin(t, env, "", "credhelper", gen...); r.code != 2 || !strings.Contains(r.stderr, "exists: it is never overwritten") {
		t.Errorf("generate over an existing file: %+v", r)
	}

	// The shell's redirection makes a file the umask allows others to read.
	printed := filepath.Join(w.dir, "printed.json")
	f, err := os.OpenFile(printed, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "credhelper"), append(gen[:len(gen)-1], "-")...)
	cmd.Env, cmd.Stdout = env, f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); _ = cmd.Process.Kill() }()
	if err := cmd.Run(); err != nil {
		t.Fatalf("generate --out -: %v: %s", err, stderr.String())
	}
	f.Close()
	wantWarn := "credhelper: warning: standard output is a file that others can read (mode 0644) and now holds a refresh token: chmod 600 it, or use --out FILE, which creates the file 0600\n"
	if stderr.String() != wantWarn {
		t.Errorf("generate --out - > 0644 file: stderr\n got %q\nwant %q", stderr.String(), wantWarn)
	}

	// put < printed.json warns once.
	in, err := os.Open(printed)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	put := exec.Command(filepath.Join(binDir, "credhelper"), "put", "--backend", "file:"+filepath.Join(w.dir, "cred.json"))
	put.Env, put.Stdin = env, in
	var perr strings.Builder
	put.Stderr = &perr
	go func() { <-ctx.Done(); _ = put.Process.Kill() }()
	if err := put.Run(); err != nil {
		t.Fatalf("put: %v: %s", err, perr.String())
	}
	if got := strings.Count(perr.String(), "warning: standard input is a file that others can read (mode 0644)"); got != 1 {
		t.Errorf("put from a 0644 file: %d warnings, want one:\n%s", got, perr.String())
	}
}

// Case 1: SIGHUP (the terminal or SSH session closed) is the same, with
// 129: the issuer's answer is waited for, not lost.
func TestSIGHUPWaitsForIssuerCall(t *testing.T) {
	w, args, accepted := hangWorld(t)
	p := startWatched(t, w.env, args...)
	waitAccepted(t, accepted)
	p.signal(syscall.SIGHUP)
	p.waitLine("credhelper: SIGHUP received (terminal closed) while the issuer may be answering a refresh of ", 5*time.Second)
	p.signal(syscall.SIGHUP)
	code, stderr := p.wait(10 * time.Second)
	if code != 129 || !strings.HasSuffix(stderr, "credhelper: SIGHUP received (terminal closed) again: stopping now, without waiting\n") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}
