//go:build linux

package hygiene

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// maxRSSKiB bounds the peak resident size (VmHWM, sampled while it runs)
// of a run that was refused: it must not read what it refused.
// credhelper-full alone peaks near 30 MiB.
const maxRSSKiB = 100 << 10

// TestSpecialPaths gives every input path (credential file, its lock,
// journal directory and entry, config file, plugin binary, CA file) a FIFO,
// /dev/zero, an oversized file and a directory. Each run fails (or, for a
// journal, logs the refusal and carries on) within a second, says what the
// path is, and stays small.
func TestSpecialPaths(t *testing.T) {
	w := newWorld(t)
	srv := w.startDev()
	dir := filepath.Join(w.root, "special")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// One of each kind of bad file, per input.
	special := func(name, kind string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		switch kind {
		case "fifo":
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		case "dev-zero":
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		case "oversized":
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, 4<<30); err != nil { // sparse: costs nothing
				t.Fatal(err)
			}
		case "directory":
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	says := map[string]string{"fifo": "named pipe (FIFO)", "dev-zero": "character device", "oversized": "4294967296 bytes, over the", "directory": "a directory"}
	good := w.credFile(filepath.Join(w.creds, "good.json"))
	w.writePair("good pair", good, w.mint("good pair", srv, time.Hour))
	plugin := filepath.Join(binDir, "fileplugin")
	pluginSum := sha256File(t, plugin)
	w.writeConfig(`
[profiles.good]
backend = "file:` + good + `"
issuer = "dev:` + srv.Addr() + `"
`)
	journalPrefix := func() string {
		sum := sha256.Sum256([]byte(good))
		return hex.EncodeToString(sum[:12])
	}()

	type run struct {
		args  []string
		code  int // exit code wanted
		extra string
	}
	for _, kind := range []string{"fifo", "dev-zero", "oversized", "directory"} {
		cases := map[string]func() run{
			"credential": func() run {
				p := special("cred-"+kind, kind)
				return run{args: []string{"get", "--backend", "file:" + p}, code: 1}
			},
			"lock": func() run {
				p := filepath.Join(dir, "locked-"+kind+".json")
				special("locked-"+kind+".json.lock", kind)
				return run{args: []string{"put", "--backend", "file:" + p}, code: 1, extra: "lock file"}
			},
			"config": func() run {
				p := special("config-"+kind, kind)
				return run{args: []string{"get", "--config", p, "--profile", "good"}, code: 2, extra: "config file"}
			},
			"plugin": func() run {
				p := special("plugin-"+kind, kind)
				cfg := filepath.Join(dir, "plugin-"+kind+".toml")
				os.WriteFile(cfg, []byte(`
[plugins.p]
path = "`+p+`"
sha256 = "`+pluginSum+`"
[profiles.p]
backend = "plugin:p:x.json"
`), 0o600)
				return run{args: []string{"get", "--config", cfg, "--profile", "p"}, code: 1, extra: "plugin binary"}
			},
			"CA file": func() run {
				p := special("ca-"+kind, kind)
				return run{args: []string{"get", "--profile", "good", "--issuer", "momento:127.0.0.1:1", "--ca-file", p}, code: 1, extra: "CA file"}
			},
			"journal directory": func() run {
				p := special("journal-"+kind, kind)
				return run{args: []string{"refresh", "--force", "--profile", "good", "--journal-dir", p}, code: 1, extra: "journal directory refused"}
			},
			"journal entry": func() run {
				jd := filepath.Join(dir, "journal-of-"+kind)
				os.Mkdir(jd, 0o700)
				old := dir
				dir = jd
				special(journalPrefix+".dead-"+kind+".json", kind)
				dir = old
				return run{args: []string{"refresh", "--force", "--profile", "good", "--journal-dir", jd}, code: 0, extra: "rejected and moved aside"}
			},
		}
		for input, setup := range cases {
			if input == "journal directory" && kind == "directory" {
				continue // that is a valid journal directory
			}
			t.Run(input+"/"+kind, func(t *testing.T) {
				r := setup()
				o := opts{stdin: recordJSON("HYGIENE-SPECIAL-AUTH-001", "HYGIENE-SPECIAL-REFRESH-01", 0)}
				p := w.command(input+" "+kind, o, r.args...)
				start := time.Now()
				w.start(p)
				res := w.wait(p, 30*time.Second)
				elapsed := time.Since(start)
				res.stdout.allow(w.readPair("good pair", good).AuthToken)
				if res.code != r.code {
					t.Errorf("exit %d, want %d; stderr: %s", res.code, r.code, res.stderr.text)
				}
				want := says[kind]
				switch {
				case kind == "dev-zero" && (input == "lock" || input == "journal entry"):
					want = "symbolic link" // no link is followed at the last step there
				case kind == "oversized" && input == "journal directory":
					want = "a regular file, not a directory"
				}
				for _, s := range []string{want, r.extra} {
					if s != "" && !strings.Contains(res.stderr.text, s) {
						t.Errorf("stderr lacks %q:\n%s", s, res.stderr.text)
					}
				}
				// Under a second of work, and no waiting: the CPU time
				// bounds the work, the wall time a hang (a loaded CI
				// machine may take a while just to start a process).
				cpu := p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
				if cpu > time.Second || elapsed > 5*time.Second {
					t.Errorf("took %v (%v of CPU), want under a second", elapsed, cpu)
				}
				if p.peakKiB == 0 || p.peakKiB > maxRSSKiB {
					t.Errorf("peak resident size %d KiB (0: never sampled), want under %d", p.peakKiB, maxRSSKiB)
				}
			})
		}
	}

	// An agent whose profile is a FIFO starts, reports the profile, and
	// stops on SIGTERM.
	fifo := special("agent-cred", "fifo")
	w.writeConfig(`
[profiles.fifo]
backend = "file:` + fifo + `"
`)
	agentEnv := opts{env: []string{"CREDHELPER_NO_AGENT=\x00unset"}}
	ag := w.command("agent with a FIFO profile", agentEnv, "agent", "--profiles", "fifo")
	w.start(ag)
	sock := filepath.Join(w.run, "credhelper", "agent.sock")
	waitFor(t, "the agent's socket", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	start := time.Now()
	r := w.terminate(ag).want(t, 0)
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the agent took %v to stop", el)
	}
	if !strings.Contains(r.stderr.text, "named pipe") {
		t.Errorf("the agent did not report the FIFO profile:\n%s", r.stderr.text)
	}
	// The special files hold no secret, and reading terabytes of holes
	// would take the search minutes.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.verify()
}
