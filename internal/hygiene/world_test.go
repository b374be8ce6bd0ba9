package hygiene

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// kind says where a secret may appear.
type kind int

const (
	// authToken may appear in the streams a run allows, the credential
	// file and a journal.
	authToken kind = iota
	// refreshToken may appear only in the credential file, a journal and
	// the streams a run allows (generate --out -).
	refreshToken
	// otherSecret (session tokens, client secrets, values a failing run
	// was given) may appear in no output and no file at all.
	otherSecret
)

func (k kind) String() string {
	return [...]string{"auth token", "refresh token", "secret"}[k]
}

// world is an isolated installation: a private root holding HOME, the XDG
// directories, TMPDIR and the credential files; the environment the
// binaries run with; and everything seen while they ran, checked by
// verify against every secret known by then.
type world struct {
	t                                   *testing.T
	root, home, config, state, run, tmp string
	creds                               string // credential files (file backend)
	env                                 []string
	journalDir                          string
	mu                                  sync.Mutex
	secrets                             map[string]secret
	streams                             []*stream
	cmdlines                            map[string]string // cmdline -> who
	credFiles                           map[string]bool
	sampled                             map[string]int // run name -> processes sampled
}

type secret struct {
	label string
	kind  kind
}

// stream is one captured output and the secrets it may carry.
type stream struct {
	where   string
	text    string
	allowed map[string]bool
}

// allow lets s carry values.
func (s *stream) allow(values ...string) {
	for _, v := range values {
		s.allowed[v] = true
	}
}

// newWorld makes the private directories (root is short: the agent's
// socket path must stay under 108 bytes) and the environment, built from
// nothing but PATH so that the test's own environment cannot leak in.
func newWorld(t *testing.T) *world {
	t.Helper()
	root, err := os.MkdirTemp("", "hyg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		os.RemoveAll(root)
	})
	w := &world{
		t: t, root: root,
		home: filepath.Join(root, "home"), config: filepath.Join(root, "config"),
		state: filepath.Join(root, "state"), run: filepath.Join(root, "run"),
		tmp: filepath.Join(root, "tmp"), creds: filepath.Join(root, "creds"),
		secrets: map[string]secret{}, cmdlines: map[string]string{},
		credFiles: map[string]bool{}, sampled: map[string]int{},
	}
	w.journalDir = filepath.Join(w.state, "credhelper", "journal")
	for _, d := range []string{w.home, w.config, w.run, w.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w.env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + w.home,
		"XDG_CONFIG_HOME=" + w.config,
		"XDG_STATE_HOME=" + w.state,
		"XDG_RUNTIME_DIR=" + w.run,
		"XDG_CACHE_HOME=" + filepath.Join(root, "cache"),
		"TMPDIR=" + w.tmp,
		"CREDHELPER_NO_AGENT=1",
	}
	return w
}

// writeConfig writes the config file at its default place
// ($XDG_CONFIG_HOME/credhelper/config.toml), %ROOT% replaced.
func (w *world) writeConfig(text string) {
	w.t.Helper()
	p := filepath.Join(w.config, "credhelper", "config.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "%ROOT%", w.root)), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// setEnv adds or replaces a variable for every later run.
func (w *world) setEnv(name, value string) {
	w.env = withEnv(w.env, name, value)
}

func withEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	if value != "\x00unset" {
		out = append(out, name+"="+value)
	}
	return out
}

// secret registers value; verify looks for every registered value.
func (w *world) secret(label string, k kind, value string) string {
	w.t.Helper()
	if len(value) < 12 {
		w.t.Fatalf("secret %s %q is too short to search for", label, value)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.secrets[value]; !ok {
		w.secrets[value] = secret{label, k}
	}
	return value
}

// pair registers p's tokens. It is safe to call from any goroutine.
func (w *world) pair(label string, p provider.Pair) provider.Pair {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range []secret{{label + " auth", authToken}, {label + " refresh", refreshToken}} {
		v := p.AuthToken
		if s.kind == refreshToken {
			v = p.RefreshToken
		}
		if _, ok := w.secrets[v]; !ok && len(v) >= 12 {
			w.secrets[v] = s
		}
	}
	return p
}

// credFile marks path as a credential file: it may hold any token.
func (w *world) credFile(path string) string {
	w.mu.Lock()
	w.credFiles[path] = true
	w.mu.Unlock()
	return path
}

// readPair reads the pair stored at a credential file and registers it.
func (w *world) readPair(label, path string) provider.Pair {
	w.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		w.t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(b)
	if err != nil {
		w.t.Fatalf("%s: %v", path, err)
	}
	return w.pair(label, rec.Pair)
}

// writePair stores p as the file backend does and registers it.
func (w *world) writePair(label, path string, p provider.Pair) {
	w.t.Helper()
	w.pair(label, p)
	b, err := (&provider.Record{Pair: p}).Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(w.credFile(path), b, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// result is one finished run.
type result struct {
	name           string
	code           int
	stdout, stderr *stream
}

// opts of one run.
type opts struct {
	stdin string
	env   []string // NAME=value added to (or replacing in) the world's
	bin   string   // in binDir, default "credhelper"; or an absolute path
	uid   int      // run as this uid (and gid), not as the test; 0: as the test
	dir   string   // working directory; default the world's TMPDIR
}

// proc is a started binary, sampled until it is waited for.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out, err *bytes.Buffer
	stop     chan struct{}
	sampler  sync.WaitGroup
	pidsSeen map[int]bool
	peakKiB  int64 // the largest VmHWM sampled of the started process itself
}

func (w *world) command(name string, o opts, args ...string) *proc {
	w.t.Helper()
	bin := o.bin
	if bin == "" {
		bin = "credhelper"
	}
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(binDir, bin)
	}
	cmd := exec.Command(bin, args...)
	env := append([]string(nil), w.env...)
	for _, kv := range o.env {
		k, v, _ := strings.Cut(kv, "=")
		env = withEnv(env, k, v)
	}
	cmd.Env = env
	cmd.Dir = w.tmp
	if o.dir != "" {
		cmd.Dir = o.dir
	}
	if o.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.uid)}}
	}
	cmd.Stdin = strings.NewReader(o.stdin)
	p := &proc{name: name, cmd: cmd, out: &bytes.Buffer{}, err: &bytes.Buffer{}, stop: make(chan struct{}), pidsSeen: map[int]bool{}}
	cmd.Stdout, cmd.Stderr = p.out, p.err
	return p
}

// start starts p and samples the command lines of it and its descendants
// until wait.
func (w *world) start(p *proc) {
	w.t.Helper()
	if err := p.cmd.Start(); err != nil {
		w.t.Fatalf("%s: %v", p.name, err)
	}
	p.sampler.Add(1)
	go func() {
		defer p.sampler.Done()
		for {
			w.sample(p, p.cmd.Process.Pid)
			select {
			case <-p.stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
		}
	}()
}

// sample records the command line of pid and of every descendant.
func (w *world) sample(p *proc, pid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return // exited, or a zombie
	}
	line := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
	if pid == p.cmd.Process.Pid {
		// The peak resident size since the last exec: rusage's maxrss
		// would count the test binary, whose memory a vfork'd child
		// shares until it execs.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					if kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil && kib > p.peakKiB {
						p.peakKiB = kib
					}
				}
			}
		}
	}
	w.mu.Lock()
	if _, ok := w.cmdlines[line]; !ok {
		w.cmdlines[line] = p.name + " (pid " + strconv.Itoa(pid) + ")"
	}
	p.pidsSeen[pid] = true
	w.mu.Unlock()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, tf := range tasks {
		kids, _ := os.ReadFile(tf)
		for _, f := range strings.Fields(string(kids)) {
			if kid, err := strconv.Atoi(f); err == nil {
				w.sample(p, kid)
			}
		}
	}
}

// wait waits for p (killing it after timeout) and records its streams.
func (w *world) wait(p *proc, timeout time.Duration) *result {
	w.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-done
		close(p.stop)
		p.sampler.Wait()
		w.t.Fatalf("%s did not finish within %v; stderr: %s", p.name, timeout, p.err)
	}
	close(p.stop)
	p.sampler.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("%s: %v", p.name, err)
	}
	r := &result{name: p.name, code: code,
		stdout: &stream{where: p.name + ": stdout", text: p.out.String(), allowed: map[string]bool{}},
		stderr: &stream{where: p.name + ": stderr", text: p.err.String(), allowed: map[string]bool{}},
	}
	w.mu.Lock()
	w.streams = append(w.streams, r.stdout, r.stderr)
	w.sampled[p.name] += len(p.pidsSeen)
	w.mu.Unlock()
	return r
}

// exec runs one binary to completion.
func (w *world) exec(name string, o opts, args ...string) *result {
	w.t.Helper()
	p := w.command(name, o, args...)
	w.start(p)
	return w.wait(p, 60*time.Second)
}

// want fails unless r exited with code.
func (r *result) want(t *testing.T, code int) *result {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", r.name, r.code, code, r.stdout.text, r.stderr.text)
	}
	return r
}

// wantOut fails unless stdout contains sub.
func (r *result) wantOut(t *testing.T, sub string) *result {
	t.Helper()
	if !strings.Contains(r.stdout.text, sub) {
		t.Errorf("%s: stdout %q lacks %q (stderr: %s)", r.name, r.stdout.text, sub, r.stderr.text)
	}
	return r
}

// wantErr fails unless stderr contains sub.
func (r *result) wantErr(t *testing.T, sub string) *result {
	t.Helper()
	if !strings.Contains(r.stderr.text, sub) {
		t.Errorf("%s: stderr %q lacks %q", r.name, r.stderr.text, sub)
	}
	return r
}

// record adds text seen in the test (an in-process error, say) to the
// streams verify searches.
func (w *world) record(where, text string) *stream {
	s := &stream{where: where, text: text, allowed: map[string]bool{}}
	w.mu.Lock()
	w.streams = append(w.streams, s)
	w.mu.Unlock()
	return s
}

// verify fails the test with every finding of search.
func (w *world) verify() {
	w.t.Helper()
	findings, summary := w.search()
	for _, f := range findings {
		w.t.Error(f)
	}
	w.t.Log(summary)
}

// search looks in every stream, every sampled command line and every file
// under the world's root for every registered secret. It returns one
// finding per leak, naming the secret and where it leaked, and per file
// holding a token with a mode other than 0600 or in a directory other
// than 0700.
func (w *world) search() (findings []string, summary string) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.secrets) == 0 {
		return []string{"no secrets registered: the search proves nothing"}, ""
	}
	values := make([]string, 0, len(w.secrets))
	for v := range w.secrets {
		values = append(values, v)
	}
	sort.Strings(values)
	leak := func(where, v, context string) {
		s := w.secrets[v]
		findings = append(findings, fmt.Sprintf("LEAK: %s %q (%s) appears in %s: …%s…", s.kind, v, s.label, where, context))
	}
	excerpt := func(text, v string) string {
		i := strings.Index(text, v)
		lo, hi := max(0, i-60), min(len(text), i+len(v)+60)
		return strings.ReplaceAll(text[lo:hi], "\n", "⏎")
	}
	for _, s := range w.streams {
		for _, v := range values {
			if strings.Contains(s.text, v) && !s.allowed[v] {
				leak(s.where, v, excerpt(s.text, v))
			}
		}
	}
	for line, who := range w.cmdlines {
		for _, v := range values {
			if strings.Contains(line, v) {
				leak("/proc/PID/cmdline of "+who, v, excerpt(line, v))
			}
		}
	}
	files := 0
	err := filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		text := string(b)
		holdsToken := false
		for _, v := range values {
			if !strings.Contains(text, v) {
				continue
			}
			inJournal := strings.HasPrefix(p, w.journalDir+string(filepath.Separator))
			if (w.credFiles[p] || inJournal) && w.secrets[v].kind != otherSecret {
				holdsToken = true
				continue
			}
			leak("file "+p, v, excerpt(text, v))
		}
		if holdsToken {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm() != 0o600 {
				findings = append(findings, fmt.Sprintf("%s holds a token with mode %04o, want 0600", p, fi.Mode().Perm()))
			}
			di, err := os.Stat(filepath.Dir(p))
			if err != nil {
				return err
			}
			if di.Mode().Perm() != 0o700 {
				findings = append(findings, fmt.Sprintf("directory %s of a file holding a token has mode %04o, want 0700", filepath.Dir(p), di.Mode().Perm()))
			}
		}
		return nil
	})
	if err != nil {
		findings = append(findings, fmt.Sprintf("walking %s: %v", w.root, err))
	}
	return findings, fmt.Sprintf("searched %d secrets in %d streams, %d command lines and %d files", len(values), len(w.streams), len(w.cmdlines), files)
}

// startDev runs the dev issuer in process with distinctive session and
// client secrets (both registered).
func (w *world) startDev(optFns ...func(*dev.Options)) *dev.Server {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w.t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", append([]func(*dev.Options){func(o *dev.Options) {
		o.SessionToken = w.secret("dev session token", otherSecret, "HYGIENE-SESSION-5e0d9a71")
		o.ClientSecret = w.secret("dev client secret", otherSecret, "HYGIENE-CLIENTSECRET-b44c0e2f")
	}}, optFns...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { srv.Close() })
	return srv
}

// mint mints a first pair at srv and registers it.
func (w *world) mint(label string, srv *dev.Server, lifetime time.Duration) provider.Pair {
	w.t.Helper()
	p, err := srv.Mint(provider.GenerateRequest{Lifetime: lifetime})
	if err != nil {
		w.t.Fatal(err)
	}
	return w.pair(label, p)
}

// recordFromJSON decodes a printed record and registers its pair.
func (w *world) recordFromJSON(label, text string) provider.Pair {
	w.t.Helper()
	rec, err := provider.DecodeRecord([]byte(strings.TrimSpace(text)))
	if err != nil {
		w.t.Fatalf("%s: %v in %q", label, err, text)
	}
	return w.pair(label, rec.Pair)
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// terminate sends SIGTERM to a started proc and waits for it.
func (w *world) terminate(p *proc) *result {
	w.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		w.t.Fatalf("%s: %v", p.name, err)
	}
	return w.wait(p, 30*time.Second)
}

// jsonField decodes text as JSON into v, failing the test otherwise.
func jsonField(t *testing.T, where, text string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(text), v); err != nil {
		t.Fatalf("%s: %v in %q", where, err, text)
	}
}
