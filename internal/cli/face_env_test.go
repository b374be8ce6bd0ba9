package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/provider"
)

// quotedToken needs quoting in every format: a single quote and a dollar.
const quotedToken = faceToken + `'$HOME`

func TestEnvFormats(t *testing.T) {
	w := newFaceWorld(t, `
[profiles.app]
backend = "file:%DIR%/app.json"
[profiles.custom]
backend = "file:%DIR%/app.json"
[profiles.custom.env]
token_var = "API_TOKEN"
endpoint_var = "API_ENDPOINT"
expiry_var = "API_EXPIRES"
[profiles.bad]
backend = "file:%DIR%/app.json"
[profiles.bad.env]
token_var = "1-not-a-name"
`)
	p := neverPair()
	p.AuthToken = quotedToken
	writeRecord(t, filepath.Join(w.dir, "app.json"), p)

	r := runBin(t, w.env, "", "credhelper", "env", "--profile", "app")
	if r.code != 0 {
		t.Fatalf("env: %+v", r)
	}
	out, err := exec.Command("sh", "-c", r.stdout+`printf '%s|%s' "$MOMENTO_API_KEY" "$MOMENTO_ENDPOINT"`).Output()
	if err != nil || string(out) != quotedToken+"|cell-1.example.com" {
		t.Errorf("sh read back %q (%v) from %q", out, err, r.stdout)
	}

	r = runBin(t, w.env, "", "credhelper", "env", "--profile", "custom", "--format", "json")
	var m map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || r.code != 0 {
		t.Fatalf("env --format json: %+v: %v", r, err)
	}
	if m["API_TOKEN"] != quotedToken || m["API_ENDPOINT"] != "cell-1.example.com" || m["API_EXPIRES"] != "0" || len(m) != 3 {
		t.Errorf("json = %v", m)
	}
	r = runBin(t, w.env, "", "credhelper", "env", "--profile", "custom", "--token-var", "OTHER", "--format", "json")
	if !strings.Contains(r.stdout, `"OTHER":`) || strings.Contains(r.stdout, "API_TOKEN") {
		t.Errorf("--token-var does not override the profile: %s", r.stdout)
	}

	// Failures: usage errors exit 2, others 1; never a secret.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"env", "--profile", "app", "--format", "dotenv"}, 1}, // $ in the token
		{[]string{"env", "--profile", "app", "--format", "yaml"}, 2},
		{[]string{"env", "--profile", "bad"}, 2},
		{[]string{"env", "--profile", "app", "--expiry-var", "A B"}, 2},
		{[]string{"env", "--profile", "app", "--token-var", "MOMENTO_ENDPOINT"}, 2},
	} {
		r := runBin(t, w.env, "", "credhelper", tc.args...)
		if r.code != tc.code || r.stdout != "" || !strings.HasPrefix(r.stderr, "credhelper: ") {
			t.Errorf("%v: %+v, want exit %d", tc.args, r, tc.code)
		}
		noFaceSecrets(t, fmt.Sprint(tc.args), r.stderr)
	}

	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())
	r = runBin(t, w.env, "", "credhelper", "env", "--profile", "app", "--format", "dotenv")
	if r.code != 0 || r.stdout != "MOMENTO_API_KEY=\""+faceToken+"\"\nMOMENTO_ENDPOINT=\"cell-1.example.com\"\n" {
		t.Errorf("dotenv: %+v", r)
	}
}

func TestExecExitCodesAndEnvironment(t *testing.T) {
	srv, minted := startDev(t)
	w := newFaceWorld(t, fmt.Sprintf(`
[profiles.app]
backend = "file:%%DIR%%/app.json"
[profiles.exp]
backend = "file:%%DIR%%/exp.json"
issuer = "dev:%s"
[profiles.broken]
backend = "file:%%DIR%%/missing.json"
`, srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())
	writeRecord(t, filepath.Join(w.dir, "exp.json"), minted)
	env := append(append([]string{}, w.env...), "MOMENTO_API_KEY=stale-value")

	r := runBin(t, env, "", "credhelper", "exec", "--profile", "app", "--", "sh", "-c", `printf '%s %s' "$MOMENTO_API_KEY" "$*"; exit 3`, "sh", "a", "b")
	if r.code != 3 || r.stdout != faceToken+" a b" {
		t.Errorf("exec: %+v, want the token in the environment and exit 3", r)
	}
	// Flags after COMMAND belong to COMMAND.
	r = runBin(t, env, "", "credhelper", "exec", "--profile", "exp", "--expiry-var", "EXP", "sh", "-c", `echo "$EXP"`, "--profile", "x")
	if r.code != 0 || strings.TrimSpace(r.stdout) != strconv.FormatInt(minted.ValidUntil.Unix(), 10) {
		t.Errorf("exec --expiry-var: %+v", r)
	}
	notExec := filepath.Join(w.dir, "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--profile", "app", "--", "no-such-command-for-credhelper"}, 127, "command not found"},
		{[]string{"--profile", "app", "--", notExec}, 126, "cannot execute"},
		{[]string{"--profile", "broken", "--", "true"}, 1, "missing.json"},
		{[]string{"--profile", "app", "--on-rotate", "reload", "--", "true"}, 2, "on-rotate"},
		{[]string{"--profile", "app"}, 2, "credhelper: exec needs COMMAND [ARGS...]"},
	} {
		r := runBin(t, env, "", "credhelper", append([]string{"exec"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("exec %v: %+v, want exit %d and %q", tc.args, r, tc.code, tc.want)
		}
		noFaceSecrets(t, "exec failure", r.stderr, r.stdout)
	}
}

// startBin starts the binary without waiting for it.
func startBin(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "credhelper"), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &out, &errb
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", path)
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("credhelper exec did not exit")
	}
	return -1
}

func TestExecForwardsSignals(t *testing.T) {
	w := newFaceWorld(t, "[profiles.app]\nbackend = \"file:%DIR%/app.json\"\n")
	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())

	// The child traps SIGTERM and exits 7: exec's status is the child's.
	ready := filepath.Join(w.dir, "ready")
	cmd, out, _ := startBin(t, w.env, "exec", "--profile", "app", "--", "sh", "-c", `trap 'echo got-term; exit 7' TERM; touch "$1"; n=0; while [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; exit 99`, "sh", ready)
	waitForFile(t, ready)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 7 || strings.TrimSpace(out.String()) != "got-term" {
		t.Errorf("SIGTERM: exit %d, output %q; want 7 after got-term", code, out.String())
	}

	// A child killed by a forwarded signal: 128+N.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1} {
		ready := filepath.Join(w.dir, "ready-"+strconv.Itoa(int(sig)))
		cmd, _, _ := startBin(t, w.env, "exec", "--profile", "app", "--", "sh", "-c", `touch "$1"; exec sleep 30`, "sh", ready)
		waitForFile(t, ready)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd); code != 128+int(sig) {
			t.Errorf("%v: exit %d, want %d", sig, code, 128+int(sig))
		}
	}
}

func TestExecRotateRestartWithDevIssuer(t *testing.T) {
	srv, _ := startDev(t)
	// A 5s pair refreshed in the last half of its life: a check soon after
	// that point sees a rotated token.
	minted, err := srv.Mint(provider.GenerateRequest{Lifetime: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := newFaceWorld(t, fmt.Sprintf("[profiles.exp]\nbackend = \"file:%%DIR%%/exp.json\"\nissuer = \"dev:%s\"\nrefresh_floor = \"2s\"\nmin_validity = \"500ms\"\n", srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "exp.json"), minted)
	tokens := filepath.Join(w.dir, "tokens")
	script := `echo "$MOMENTO_API_KEY" >> "$1"; [ "$(wc -l < "$1")" -ge 2 ] && exit 0; trap 'exit 0' TERM; n=0; while [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; exit 99`
	cmd, _, errb := startBin(t, w.env, "exec", "--profile", "exp", "--on-rotate", "restart", "--check-every", "200ms", "--log-level", "info", "--", "sh", "-c", script, "sh", tokens)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, _ := os.ReadFile(tokens)
	lines := strings.Fields(string(b))
	if len(lines) != 2 || lines[0] == lines[1] || lines[1] == minted.AuthToken {
		t.Fatalf("the child saw %d tokens (distinct: %v)", len(lines), len(lines) == 2 && lines[0] != lines[1])
	}
	for _, tok := range lines {
		if info, err := provider.ParseAuthToken(tok); err != nil || time.Now().After(info.Expires) {
			t.Errorf("the child got an invalid token: %v", err)
		}
	}
	if st := srv.Stats(); st.Refreshes < 1 || st.Reuses != 0 || st.Rejected != 0 {
		t.Errorf("dev issuer %+v: want a refresh, no reuse, no rejection", st)
	}
	if !strings.Contains(errb.String(), "restarted the command") {
		t.Errorf("no restart logged at info level: %s", errb.String())
	}
	for _, tok := range append(lines, minted.AuthToken, minted.RefreshToken) {
		if strings.Contains(errb.String(), tok) {
			t.Error("exec's log leaks a token")
		}
	}
}

func TestExecRotateSignalAfterPut(t *testing.T) {
	w := newFaceWorld(t, "[profiles.app]\nbackend = \"file:%DIR%/app.json\"\n")
	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())
	ready := filepath.Join(w.dir, "ready")
	// On SIGUSR1 the child fetches the new token itself, as --on-rotate
	// signal expects.
	script := `trap 'credhelper get --profile app; exit 0' USR1; echo "$MOMENTO_API_KEY"; touch "$1"; n=0; while [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; exit 99`
	env := append(append([]string{}, w.env...), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd, out, errb := startBin(t, env, "exec", "--profile", "app", "--on-rotate", "signal:SIGUSR1", "--check-every", "100ms", "--", "sh", "-c", script, "sh", ready)
	waitForFile(t, ready)
	rotated := fmt.Sprintf(`{"apiKey":"ROTATED-%s","refreshToken":"","validUntil":0,"endpoint":"cell-1.example.com"}`, faceToken)
	if r := runBin(t, w.env, rotated, "credhelper", "put", "--profile", "app"); r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); got != faceToken+"\nROTATED-"+faceToken+"\n" {
		t.Errorf("child output %q", got)
	}
}

func TestCompletionAndExamples(t *testing.T) {
	w := newFaceWorld(t, "[profiles.alpha]\nbackend = \"file:x\"\n[profiles.beta]\nbackend = \"file:y\"\n")
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := runBin(t, w.env, "", "credhelper", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "credhelper") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
	if _, err := exec.LookPath("bash"); err == nil {
		r := runBin(t, w.env, "", "credhelper", "completion", "bash")
		c := exec.Command("bash", "-c", "source /dev/stdin && complete -p credhelper")
		c.Stdin = strings.NewReader(r.stdout)
		out, err := c.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "credhelper") {
			t.Errorf("bash does not load the completion: %v: %s", err, out)
		}
	}
	if r := runBin(t, w.env, "", "credhelper", "completion", "tcsh"); r.code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", r.code)
	}
	r := runBin(t, w.env, "", "credhelper", "__complete", "get", "--profile", "")
	if !strings.Contains(r.stdout, "alpha\nbeta\n") {
		t.Errorf("--profile completion: %q", r.stdout)
	}
	r = runBin(t, w.env, "", "credhelper", "__complete", "exec", "--on-rotate", "")
	if !strings.Contains(r.stdout, "signal:SIGHUP") {
		t.Errorf("--on-rotate completion: %q", r.stdout)
	}

	// Every command a person runs shows an example in --help.
	a := &app{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := a.rootCommand()
	exempt := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.Hidden && c.Example == "" && !exempt[c.CommandPath()] {
			t.Errorf("%q has no Example for --help", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	// The completion knows the build-tool faces and their actions.
	r = runBin(t, w.env, "", "credhelper", "__complete", "")
	for _, name := range []string{"goauth", "cargo", "kubelet", "bazel", "terraform"} {
		if !strings.Contains(r.stdout, "\n"+name+"\t") {
			t.Errorf("command completion lacks %s: %q", name, r.stdout)
		}
	}
	if r = runBin(t, w.env, "", "credhelper", "__complete", "terraform", ""); !strings.Contains(r.stdout, "get\nstore\nforget\n") {
		t.Errorf("terraform completion: %q", r.stdout)
	}
	if r = runBin(t, w.env, "", "credhelper", "__complete", "bazel", ""); !strings.HasPrefix(r.stdout, "get\n") {
		t.Errorf("bazel completion: %q", r.stdout)
	}
	for _, name := range []string{"docker", "git", "kubectl", "env", "exec", "completion", "goauth", "cargo", "kubelet", "bazel", "terraform"} {
		var out bytes.Buffer
		code := run(context.Background(), []string{"credhelper", name, "--help"}, strings.NewReader(""), &out, &bytes.Buffer{})
		if code != 0 || !strings.Contains(out.String(), "Examples:") {
			t.Errorf("credhelper %s --help: exit %d, no Examples section", name, code)
		}
	}
}
