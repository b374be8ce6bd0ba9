package hygiene

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
)

// wantMode fails unless path's permission bits are want.
func wantMode(t *testing.T, what, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s %s has mode %04o, want %04o", what, path, got, want)
	}
}

// TestPermissions checks the modes of everything credhelper creates that
// holds or guards a secret, and that it refuses credential files others
// can read and plugin binaries others can write.
func TestPermissions(t *testing.T) {
	w := newWorld(t)
	srv := w.startDev(func(o *dev.Options) { o.RefreshDelay = 1500 * time.Millisecond })
	plugin := filepath.Join(binDir, "fileplugin")
	w.writeConfig(`
[plugins.file]
path = "` + plugin + `"
sha256 = "` + sha256File(t, plugin) + `"
args = ["-dir", "%ROOT%/creds/plugin"]

[profiles.app]
backend = "file:%ROOT%/creds/deep/app/cred.json"

[profiles.plug]
backend = "plugin:file:sub/plug.json"
issuer = "dev:` + srv.Addr() + `"
`)
	debug := opts{env: []string{"CREDHELPER_LOG_LEVEL=debug"}}

	// Credential files 0600 in directories 0700, created by put, directly
	// and through the plugin.
	appFile := w.credFile(filepath.Join(w.creds, "deep", "app", "cred.json"))
	w.exec("put app", opts{stdin: recordJSON(appAuth, appRefresh, 0)}, "put", "--profile", "app").want(t, 0)
	wantMode(t, "credential file", appFile, 0o600)
	wantMode(t, "credential lock file", appFile+".lock", 0o600)
	wantMode(t, "credential directory", filepath.Dir(appFile), 0o700)
	wantMode(t, "credential directory's parent", filepath.Join(w.creds, "deep"), 0o700)
	w.pair("app", provider.Pair{AuthToken: appAuth, RefreshToken: appRefresh})

	plugFile := w.credFile(filepath.Join(w.creds, "plugin", "sub", "plug.json"))
	first := w.mint("plug first", srv, time.Hour)
	b, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	w.exec("put plug", opts{stdin: string(b)}, "put", "--profile", "plug").want(t, 0)
	wantMode(t, "credential file (plugin)", plugFile, 0o600)
	wantMode(t, "credential directory (plugin)", filepath.Dir(plugFile), 0o700)

	// A journal in flight: the plugin (the backend) is stopped after the
	// claim, while the issuer delays its answer, so the commit waits and
	// the journal stays on disk until the plugin continues.
	refresh := w.command("refresh --force plug", debug, "refresh", "--profile", "plug", "--force")
	w.start(refresh)
	waitFor(t, "the refresh to claim the pair", 20*time.Second, func() bool {
		b, _ := os.ReadFile(plugFile)
		return strings.Contains(string(b), `"lease"`)
	})
	pluginPID := findDescendant(t, refresh.cmd.Process.Pid, "fileplugin")
	if err := syscall.Kill(pluginPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var journal string
	waitFor(t, "the journal of the issued pair", 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(w.journalDir, "*.json"))
		if len(m) == 1 {
			journal = m[0]
		}
		return journal != ""
	})
	wantMode(t, "journal", journal, 0o600)
	wantMode(t, "journal directory", w.journalDir, 0o700)
	wantMode(t, "journal directory's parent", filepath.Dir(w.journalDir), 0o700)
	jb, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	var jr struct {
		Record json.RawMessage `json:"record"`
	}
	jsonField(t, "journal", string(jb), &jr)
	issued := w.recordFromJSON("journaled", string(jr.Record))
	if err := syscall.Kill(pluginPID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	w.wait(refresh, 30*time.Second).want(t, 0)
	if _, err := os.Stat(journal); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the journal %s outlived its commit: %v", journal, err)
	}
	if got := w.readPair("plug committed", plugFile); got.AuthToken != issued.AuthToken || got.RefreshToken != issued.RefreshToken {
		t.Error("the committed pair is not the journaled one")
	}

	// Group- or world-readable credential files are refused.
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(appFile, mode); err != nil {
			t.Fatal(err)
		}
		m := strconv.FormatUint(uint64(mode), 8)
		w.exec("get, file mode "+m, opts{}, "get", "--profile", "app").want(t, 1).wantErr(t, "chmod 600")
		w.exec("status, file mode "+m, opts{}, "status", "--profile", "app").want(t, 1).wantErr(t, "chmod 600")
		w.exec("docker get, file mode "+m, opts{bin: "docker-credential-credhelper", stdin: "registry.example.com"}, "get").want(t, 1)
		w.exec("put over, file mode "+m, opts{stdin: recordJSON(appAuth, appRefresh, 0)}, "put", "--profile", "app").want(t, 1).wantErr(t, "chmod 600")
	}
	if err := os.Chmod(appFile, 0o600); err != nil {
		t.Fatal(err)
	}
	w.exec("get, file mode 600", opts{}, "get", "--profile", "app").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)

	// The agent's socket 0600 in a directory 0700.
	agentEnv := []string{"CREDHELPER_NO_AGENT=\x00unset"}
	agent := w.command("agent", opts{env: agentEnv}, "agent", "--profiles", "app", "--log-level", "debug")
	w.start(agent)
	sock := filepath.Join(w.run, "credhelper", "agent.sock")
	waitFor(t, "the agent's socket", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("agent socket %s: %v %v", sock, fi, err)
	}
	wantMode(t, "agent socket", sock, 0o600)
	wantMode(t, "agent socket directory", filepath.Dir(sock), 0o700)
	wantMode(t, "agent lock file", sock+".lock", 0o600)
	o := opts{env: agentEnv}
	w.exec("get (agent)", o, "get", "--profile", "app").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)
	w.terminate(agent).want(t, 0)

	// Plugin binaries others can write are refused, by plugins.Open and by
	// the command line; the same binary closed to others runs.
	pdir := filepath.Join(w.root, "plugins")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	copyPlugin := filepath.Join(pdir, "fileplugin")
	if err := os.WriteFile(copyPlugin, pb, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256File(t, copyPlugin)
	spec := plugins.Spec{Name: "file", Path: copyPlugin, SHA256: sum, Args: []string{"-dir", w.creds}}
	open := func(mode fs.FileMode) error {
		t.Helper()
		if err := os.Chmod(copyPlugin, mode); err != nil {
			t.Fatal(err)
		}
		p, err := plugins.Open(spec)
		if err == nil {
			b, lerr := p.Backend(t.Context())
			if lerr == nil {
				_, lerr = b.Load(t.Context(), "deep/app/cred.json")
			}
			if lerr != nil {
				t.Errorf("plugin with mode %04o: Load: %v", mode, lerr)
			}
			p.Close()
		} else {
			w.record("plugins.Open error", err.Error())
		}
		return err
	}
	for _, mode := range []fs.FileMode{0o666, 0o777, 0o775, 0o757} {
		err := open(mode)
		if !errors.Is(err, plugins.ErrUnsafeBinary) || !strings.Contains(err.Error(), "chmod go-w") {
			t.Errorf("plugins.Open of a binary with mode %04o: %v, want ErrUnsafeBinary naming chmod go-w", mode, err)
		}
	}
	if err := open(0o755); err != nil {
		t.Errorf("plugins.Open of a binary with mode 0755: %v", err)
	}
	if err := os.Chmod(copyPlugin, 0o666); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(`
[plugins.unsafe]
path = "` + copyPlugin + `"
sha256 = "` + sum + `"
args = ["-dir", "%ROOT%/creds"]

[profiles.unsafe]
backend = "plugin:unsafe:deep/app/cred.json"
`)
	w.exec("get, plugin mode 0666", opts{}, "get", "--profile", "unsafe").want(t, 1).wantErr(t, "writable by group or others")
	if err := os.Chmod(copyPlugin, 0o755); err != nil {
		t.Fatal(err)
	}
	w.exec("get, plugin mode 0755", opts{}, "get", "--profile", "unsafe").want(t, 0).wantOut(t, appAuth).stdout.allow(appAuth)

	// The config file holds no secrets by design; it is read from its
	// default place (the profiles above resolved from it) and no secret
	// was written into it (the search below covers it).
	w.verify()
}

// findDescendant returns the pid of the descendant of pid whose command
// line contains name.
func findDescendant(t *testing.T, pid int, name string) int {
	t.Helper()
	var found int
	var walk func(int)
	walk = func(p int) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/*/children")
		for _, tf := range tasks {
			kids, _ := os.ReadFile(tf)
			for _, f := range strings.Fields(string(kids)) {
				kid, err := strconv.Atoi(f)
				if err != nil {
					continue
				}
				if b, _ := os.ReadFile("/proc/" + f + "/cmdline"); found == 0 && strings.Contains(string(b), name) {
					found = kid
				}
				walk(kid)
			}
		}
	}
	waitFor(t, name+" under pid "+strconv.Itoa(pid), 10*time.Second, func() bool { walk(pid); return found != 0 })
	return found
}
