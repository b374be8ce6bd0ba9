//go:build linux

package hygiene

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// The two throwaway users of the attack suite. They need no account: the
// kernel only sees uids, and the binaries run as them through
// syscall.Credential.
const (
	attackerUID = 4301
	victimUID   = 4302
)

// attackWorld is a world whose binaries run as the victim, with places
// another user controls beside it.
type attackWorld struct {
	*world
	shared   string // root's, mode 1777: what /tmp is
	open     string // root's, mode 0777, not sticky
	atk      string // the attacker's home, 0755
	rootOnly string // root's 0700: where root's files live
	helper   string // the test binary, executable by both users
	srv      *dev.Server
	prod     string // the victim's production credential
	v        opts   // runs as the victim
}

func newAttackWorld(t *testing.T) *attackWorld {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the attack suite runs the binaries as two other users and must run as root (CI runs as root)")
	}
	w := newWorld(t)
	a := &attackWorld{world: w, v: opts{uid: victimUID},
		shared: filepath.Join(w.root, "shared"), open: filepath.Join(w.root, "open"),
		atk: filepath.Join(w.root, "attacker"), rootOnly: filepath.Join(w.root, "rootonly")}
	for _, d := range []struct {
		path string
		mode os.FileMode
		uid  int
	}{
		{w.root, 0o755, 0}, {binDir, 0o755, 0},
		{a.shared, 0o777 | os.ModeSticky, 0}, {a.open, 0o777, 0}, {a.rootOnly, 0o700, 0},
		{a.atk, 0o755, attackerUID}, {w.creds, 0o700, 0},
	} {
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d.path, d.uid, d.uid); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	a.helper = filepath.Join(binDir, "hygiene.test")
	if err := os.WriteFile(a.helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	a.srv = w.startDev()
	a.prod = w.credFile(filepath.Join(w.creds, "prod.json"))
	w.writePair("victim's first pair", a.prod, w.mint("victim's first pair", a.srv, time.Hour))
	w.writeConfig(`
[profiles.prod]
backend = "file:` + a.prod + `"
issuer = "dev:` + a.srv.Addr() + `"
`)
	a.giveToVictim()
	return a
}

// giveToVictim hands the victim's directories, and all in them, to the
// victim.
func (a *attackWorld) giveToVictim() {
	a.t.Helper()
	for _, d := range []string{a.home, a.config, a.state, a.run, a.tmp, a.creds} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			a.t.Fatal(err)
		}
		err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, victimUID, victimUID)
		})
		if err != nil {
			a.t.Fatal(err)
		}
	}
}

// asAttacker runs a shell script as the attacker.
func (a *attackWorld) asAttacker(script string) {
	a.t.Helper()
	cmd := exec.Command("/bin/sh", "-euc", script)
	cmd.Dir = a.atk
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + a.atk}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attackerUID, Gid: attackerUID}}
	if out, err := cmd.CombinedOutput(); err != nil {
		a.t.Fatalf("attacker's script failed: %v\n%s\n%s", err, script, out)
	}
}

// attackerHelper runs an attacker step of the test binary as the attacker.
func (a *attackWorld) attackerHelper(args ...string) *exec.Cmd {
	cmd := exec.Command(a.helper, args[1:]...)
	cmd.Dir = a.atk
	cmd.Env = []string{attackerStepEnv + "=" + args[0], "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: attackerUID, Gid: attackerUID}}
	return cmd
}

// asRoot returns opts that run as root with root's own (empty) home and
// config, as root's shell would: root trusts no file another user owns.
func (a *attackWorld) asRoot(stdin string) opts {
	return opts{stdin: stdin, env: []string{"HOME=" + a.rootOnly, "XDG_CONFIG_HOME=" + a.rootOnly, "XDG_STATE_HOME=" + filepath.Join(a.rootOnly, "state"), "XDG_RUNTIME_DIR=" + a.rootOnly}}
}

// as returns the victim's opts with extra environment.
func (a *attackWorld) as(env ...string) opts {
	o := a.v
	o.env = env
	return o
}

// stored reads the victim's stored record.
func (a *attackWorld) stored() *provider.Record {
	a.t.Helper()
	b, err := os.ReadFile(a.prod)
	if err != nil {
		a.t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(b)
	if err != nil {
		a.t.Fatal(err)
	}
	a.pair("victim's stored pair", rec.Pair)
	return rec
}

// intact fails unless the victim's stored pair is want and the dev issuer
// saw no reuse, rejection or revocation: the lineage is whole.
func (a *attackWorld) intact(t *testing.T, want provider.Pair) {
	t.Helper()
	got := a.stored().Pair
	if got.AuthToken != want.AuthToken || got.RefreshToken != want.RefreshToken || got.Generation != want.Generation {
		t.Errorf("the victim's stored pair changed: generation %d, want %d (or other tokens)", got.Generation, want.Generation)
	}
	if st := a.srv.Stats(); st.Reuses != 0 || st.FamiliesRevoked != 0 || st.Rejected != 0 {
		t.Errorf("dev issuer %+v: a refresh token was reused or rejected", st)
	}
}

// refused fails unless r failed with every part in its stderr.
func refused(t *testing.T, r *result, parts ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("%s succeeded; stderr: %s", r.name, r.stderr.text)
	}
	for _, p := range parts {
		if !strings.Contains(r.stderr.text, p) {
			t.Errorf("%s: stderr lacks %q:\n%s", r.name, p, r.stderr.text)
		}
	}
}

// TestAttacks replays, as two users, every attack of issue 14 against the
// built binaries: each is refused with the error that names it, and the
// victim's stored pair and lineage stay intact (the dev issuer counts no
// reuse, rejection or revocation).
func TestAttacks(t *testing.T) {
	a := newAttackWorld(t)
	a.v.env = nil
	pair := a.stored().Pair
	version := func() string {
		b, _ := os.ReadFile(a.prod)
		sum := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(sum[:16])
	}
	// refreshOK runs one legitimate refresh as the victim and returns the
	// new stored pair.
	refreshOK := func(t *testing.T, name string, o opts, args ...string) (*result, provider.Pair) {
		t.Helper()
		before := a.stored().Pair
		r := a.exec(name, o, append([]string{"refresh", "--profile", "prod", "--force"}, args...)...)
		r.want(t, 0)
		after := a.stored().Pair
		if after.Generation != before.Generation+1 {
			t.Errorf("%s: generation %d after a refresh of %d", name, after.Generation, before.Generation)
		}
		return r, after
	}

	t.Run("plugin pinned binary swapped in a directory the attacker owns", func(t *testing.T) {
		plugins := filepath.Join(a.atk, "plugins")
		marker := filepath.Join(a.shared, "evil-ran")
		a.asAttacker(`mkdir plugins && cp ` + filepath.Join(binDir, "fileplugin") + ` plugins/plugin && printf '#!/bin/sh\necho ran >> ` + marker + `\nexit 1\n' > plugins/evil && chmod 755 plugins/evil`)
		mine := filepath.Join(a.home, "plugins", "fileplugin")
		if err := os.MkdirAll(filepath.Dir(mine), 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(binDir, "fileplugin"))
		os.WriteFile(mine, b, 0o755)
		a.asAttacker(`ln -s ` + mine + ` ` + filepath.Join(a.shared, "plugin-link"))
		a.writeConfig(`
[plugins.swapped]
path = "` + filepath.Join(plugins, "plugin") + `"
sha256 = "` + sha256File(t, filepath.Join(binDir, "fileplugin")) + `"
args = ["-dir", "` + a.creds + `"]

[plugins.linked]
path = "` + filepath.Join(a.shared, "plugin-link") + `"
sha256 = "` + sha256File(t, mine) + `"
args = ["-dir", "` + a.creds + `"]

[profiles.prod]
backend = "file:` + a.prod + `"
issuer = "dev:` + a.srv.Addr() + `"

[profiles.swapped]
backend = "plugin:swapped:prod.json"

[profiles.linked]
backend = "plugin:linked:prod.json"
`)
		a.giveToVictim()
		swap := a.attackerHelper("swap", filepath.Join(plugins, "plugin"), filepath.Join(plugins, "evil"))
		if err := swap.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { swap.Process.Kill(); swap.Wait() }()
		for i := range 20 {
			r := a.exec("get through a swapped plugin "+strconv.Itoa(i), a.v, "get", "--profile", "swapped")
			refused(t, r, "plugin binary", "belongs to uid 4301")
		}
		r := a.exec("get through the attacker's link to a plugin", a.v, "get", "--profile", "linked")
		refused(t, r, "symbolic link to plugin binary", "belongs to uid 4301")
		if _, err := os.Stat(marker); err == nil {
			t.Error("the attacker's unpinned binary ran as the victim")
		}
		a.intact(t, pair)
	})

	t.Run("planted journal entries in a directory others control", func(t *testing.T) {
		// The attacker plants ten entries that claim the victim's current
		// version, as if it could read it, each carrying the attacker's
		// own pair at generation 50.
		evil, err := a.srv.Mint(provider.GenerateRequest{Lifetime: time.Hour}) // the attacker's own
		if err != nil {
			t.Fatal(err)
		}
		evil.Generation = 50
		rec, _ := (&provider.Record{Pair: evil}).Encode()
		sum := sha256.Sum256([]byte(a.prod))
		prefix := hex.EncodeToString(sum[:12])
		var plant strings.Builder
		plant.WriteString("mkdir -m 777 jdir\n")
		for i := 1; i <= 10; i++ {
			fmt.Fprintf(&plant, "printf '%%s' '{\"key\":\"%s\",\"holder\":\"dead-%d\",\"claimedVersion\":\"%s\",\"spentGeneration\":%d,\"record\":%s}' > jdir/%s.dead-%d.json\nchmod 600 jdir/%s.dead-%d.json\n",
				a.prod, i, version(), i, rec, prefix, i, prefix, i)
		}
		plant.WriteString("ln -s " + a.atk + " " + filepath.Join(a.shared, "state-link") + "\n")
		a.asAttacker(plant.String())
		jdir := filepath.Join(a.atk, "jdir")
		for _, tc := range []struct {
			name string
			o    opts
			args []string
			says []string
		}{
			{"--journal-dir the attacker owns", a.v, []string{"--journal-dir", jdir}, []string{"journal directory refused", "belongs to uid 4301"}},
			{"--journal-dir in a world-writable directory", a.v, []string{"--journal-dir", filepath.Join(a.open, "j")}, []string{"journal directory refused", "writable by group or others"}},
			{"XDG_STATE_HOME through the attacker's link", a.as("XDG_STATE_HOME=" + filepath.Join(a.shared, "state-link")), nil, []string{"journal directory refused", "symbolic link", "belongs to uid 4301"}},
		} {
			// Refused before anything is spent: no refresh token is
			// presented without a journal this user alone controls.
			before := a.stored().Pair
			r := a.exec("refresh with "+tc.name, tc.o, append([]string{"refresh", "--profile", "prod", "--force"}, tc.args...)...)
			r.want(t, 1)
			for _, s := range tc.says {
				r.wantErr(t, s)
			}
			after := a.stored().Pair
			if after.AuthToken == evil.AuthToken || after.Generation >= 50 {
				t.Fatalf("%s: a planted entry was replayed", tc.name)
			}
			if after.Generation != before.Generation || after.AuthToken != before.AuthToken {
				t.Fatalf("%s: the stored pair changed (generation %d to %d)", tc.name, before.Generation, after.Generation)
			}
			pair = after
		}
		if m, _ := filepath.Glob(filepath.Join(jdir, "*.json")); len(m) != 10 {
			t.Errorf("the planted entries were touched: %v", m)
		}
		if st := a.srv.Stats(); st.RefreshAttempts != 0 {
			t.Errorf("dev issuer %+v, want no refresh attempt: every journal directory was refused", st)
		}
		a.intact(t, pair)
	})

	t.Run("file backend: links and files others own", func(t *testing.T) {
		target := filepath.Join(a.rootOnly, "etc-file")
		a.asAttacker("ln -s " + target + " " + filepath.Join(a.shared, "root.json.lock") + "\nln -s " + target + " " + filepath.Join(a.open, "root.json.lock"))
		put := recordJSON("HYGIENE-ROOT-AUTH-77aa01", "HYGIENE-ROOT-REFRESH-77aa02", 0)
		a.secret("root's auth", authToken, "HYGIENE-ROOT-AUTH-77aa01")
		a.secret("root's refresh", refreshToken, "HYGIENE-ROOT-REFRESH-77aa02")
		refused(t, a.exec("root's put beside a planted lock link (sticky)", a.asRoot(put), "put", "--backend", "file:"+filepath.Join(a.shared, "root.json")), "lock file", "symbolic link")
		refused(t, a.exec("root's put beside a planted lock link (world-writable)", a.asRoot(put), "put", "--backend", "file:"+filepath.Join(a.open, "root.json")), "writable by group or others", "chmod go-w "+a.open)
		if _, err := os.Lstat(target); err == nil {
			t.Error("a planted lock link made root create a file where it points")
		}

		theirs := filepath.Join(a.shared, "theirs.json")
		a.asAttacker("printf '%s' '" + recordJSON("HYGIENE-ATTACKER-AUTH-19", "HYGIENE-ATTACKER-REFRESH-19", 0) + "' > " + theirs + " && chmod 600 " + theirs)
		r := a.exec("root's get of a 0600 file the attacker owns", a.asRoot(""), "get", "--backend", "file:"+theirs)
		refused(t, r, "credential file", "belongs to uid 4301")
		if r.stdout.text != "" {
			t.Errorf("served the attacker's token: %q", r.stdout.text)
		}

		lure := filepath.Join(a.shared, "lure.json")
		a.asAttacker("ln -s " + a.prod + " " + lure)
		before := a.srv.Stats()
		refused(t, a.exec("victim's refresh through the attacker's link to the production file", a.v, "refresh", "--force", "--backend", "file:"+lure, "--issuer", "dev:"+a.srv.Addr()), "symbolic link to credential file", "belongs to uid 4301")
		if after := a.srv.Stats(); after.RefreshAttempts != before.RefreshAttempts {
			t.Error("the production refresh token was spent through the attacker's link")
		}
		a.intact(t, pair)
	})

	t.Run("one credential through a link of the victim's own", func(t *testing.T) {
		alias := filepath.Join(a.home, "alias.json")
		if err := os.Symlink(a.prod, alias); err != nil {
			t.Fatal(err)
		}
		os.Lchown(alias, victimUID, victimUID)
		viaLink := []string{"--backend", "file:" + alias, "--issuer", "dev:" + a.srv.Addr()}
		_, pair = refreshOK(t, "refresh through the link", a.v, viaLink...)
		_, pair = refreshOK(t, "refresh through the real path", a.v)
		next := a.mint("victim's put pair", a.srv, time.Hour)
		b, _ := (&provider.Record{Pair: next}).Encode()
		a.exec("put through the link", opts{uid: victimUID, stdin: string(b)}, append([]string{"put"}, viaLink...)...).want(t, 0)
		if fi, err := os.Lstat(alias); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("put replaced the link with a file: %v %v", fi, err)
		}
		pair = a.stored().Pair
		if pair.AuthToken != next.AuthToken {
			t.Fatal("put through the link did not update the file it points to")
		}
		_, pair = refreshOK(t, "refresh through the real path after the put", a.v)
		a.intact(t, pair)
	})

	t.Run("plaintext issuer off loopback", func(t *testing.T) {
		for _, args := range [][]string{
			{"--issuer", "dev:10.1.2.3:7777"},
			{"--issuer", "momento:10.1.2.3:443", "--insecure"},
		} {
			r := a.exec("refresh with "+strings.Join(args, " "), a.v, append([]string{"refresh", "--force", "--backend", "file:" + a.prod}, args...)...)
			refused(t, r, "not a loopback address", "cleartext")
			if n := strings.Count(strings.TrimSpace(r.stderr.text), "\n"); n != 0 {
				t.Errorf("%s: %d lines of error, want one", r.name, n+1)
			}
		}
		a.intact(t, pair)
	})

	t.Run("relative XDG values are ignored", func(t *testing.T) {
		cwd := filepath.Join(a.shared, "cwd")
		a.asAttacker("mkdir -p " + cwd + "/cfg/credhelper && chmod 777 " + cwd + " && printf '[profiles.planted]\\nbackend = \"file:" + filepath.Join(a.shared, "theirs.json") + "\"\\n' > " + cwd + "/cfg/credhelper/config.toml")
		// The victim's config where the XDG spec's default puts it.
		cfg, err := os.ReadFile(filepath.Join(a.config, "credhelper", "config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(a.home, ".config", "credhelper"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.home, ".config", "credhelper", "config.toml"), cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		a.giveToVictim()
		o := a.as("XDG_CONFIG_HOME=cfg", "XDG_STATE_HOME=state", "XDG_RUNTIME_DIR=run")
		o.dir = cwd
		refused(t, a.exec("status of a profile in a relative XDG_CONFIG_HOME", o, "status", "--profile", "planted"), `no profile "planted"`)
		_, pair = refreshOK(t, "refresh with relative XDG_STATE_HOME", o)
		for _, d := range []string{"state", "run"} {
			if _, err := os.Lstat(filepath.Join(cwd, d)); err == nil {
				t.Errorf("a relative XDG directory %q was used under the working directory", d)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(a.home, ".local", "state", "credhelper", "journal", "journal.key")); len(m) != 1 {
			t.Error("the journal did not fall back to ~/.local/state")
		}
		a.intact(t, pair)
	})

	t.Run("squatted /tmp socket directory", func(t *testing.T) {
		squat := "/tmp/credhelper-" + strconv.Itoa(victimUID)
		os.RemoveAll(squat)
		t.Cleanup(func() { os.RemoveAll(squat) })
		a.asAttacker("mkdir -m 700 " + squat)
		agentOpts := a.as("CREDHELPER_NO_AGENT=\x00unset", "XDG_RUNTIME_DIR=\x00unset", "XDG_STATE_HOME=\x00unset")
		// With a home, the socket goes in the state directory, out of reach.
		ag := a.command("agent with a home", agentOpts, "agent", "--profiles", "prod")
		a.start(ag)
		sock := filepath.Join(a.home, ".local", "state", "credhelper", "agent", "agent.sock")
		waitFor(t, "the agent's socket in the state directory", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
		a.terminate(ag).want(t, 0)
		// Without one, /tmp is the last resort: the agent refuses it and
		// a client warns, and still answers directly.
		noHome := a.as("CREDHELPER_NO_AGENT=\x00unset", "XDG_RUNTIME_DIR=\x00unset", "XDG_STATE_HOME=\x00unset", "HOME=\x00unset",
			"CREDHELPER_CONFIG="+filepath.Join(a.config, "credhelper", "config.toml"), "XDG_CONFIG_HOME=\x00unset")
		refused(t, a.exec("agent without a home", noHome, "agent", "--profiles", "prod", "--journal-dir", a.journalDir), "socket directory "+squat, "belongs to uid 4301")
		r := a.exec("get without a home", noHome, "get", "--profile", "prod", "--journal-dir", a.journalDir).want(t, 0).wantErr(t, "socket directory "+squat)
		r.stdout.allow(pair.AuthToken)
		a.intact(t, pair)
	})

	t.Run("metrics on a unix socket are the victim's alone", func(t *testing.T) {
		// In a directory others can enter, so that the socket's own mode
		// is what keeps them out.
		vm := filepath.Join(a.shared, "victim-metrics")
		if err := os.Mkdir(vm, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(vm, victimUID, victimUID)
		msock := filepath.Join(vm, "metrics.sock")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp := l.Addr().String()
		l.Close()
		for _, tc := range []struct {
			addr, network, dial string
			readable            bool
		}{
			{"unix:" + msock, "unix", msock, false},
			{tcp, "tcp", tcp, true},
		} {
			ag := a.command("agent with metrics on "+tc.addr, a.as("CREDHELPER_NO_AGENT=\x00unset"), "agent", "--profiles", "prod", "--metrics-addr", tc.addr)
			a.start(ag)
			waitFor(t, "the metrics listener", 20*time.Second, func() bool {
				c, err := net.Dial(tc.network, tc.dial)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			out, err := a.attackerHelper("dial", tc.network, tc.dial).CombinedOutput()
			if err != nil {
				t.Fatal(err, string(out))
			}
			a.record("attacker reading metrics", string(out))
			got := strings.Contains(string(out), "credhelper_refresh_events_total")
			if got != tc.readable {
				t.Errorf("another user reading metrics on %s: readable %v, want %v:\n%.300s", tc.addr, got, tc.readable, out)
			}
			if !tc.readable && !strings.Contains(string(out), "permission denied") {
				t.Errorf("another user connecting to the metrics socket: %s", out)
			}
			a.terminate(ag).want(t, 0)
		}
		a.intact(t, pair)
	})

	a.verify()
}
