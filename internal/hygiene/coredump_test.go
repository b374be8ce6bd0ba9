//go:build linux

package hygiene

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNoCoreDumps runs the agent as the victim with `ulimit -c unlimited`
// and GOTRACEBACK=crash, holding tokens, and makes it crash with SIGQUIT:
// no core is written. Checks that do not depend on core_pattern come
// first: the kernel reports the agent's soft core limit as 0 and owns its
// /proc entries by root (the mark of a process that is not dumpable), and
// its wait status carries no "core dumped". A control process without
// credhelper's start-up, crashed the same way in the same place, must
// dump, or the machine cannot tell and the test fails.
func TestNoCoreDumps(t *testing.T) {
	a := newAttackWorld(t)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_CORE, &old) })
	pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	cores := func() []string {
		m, _ := filepath.Glob(filepath.Join(a.tmp, "core*"))
		return m
	}

	// Control: a plain process crashed by SIGQUIT dumps here.
	ctl := exec.Command("/bin/sleep", "60")
	ctl.Dir = a.tmp
	ctl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: victimUID, Gid: victimUID}}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ctl.Process.Signal(syscall.SIGQUIT)
	ctl.Wait()
	if ws := ctl.ProcessState.Sys().(syscall.WaitStatus); !ws.CoreDump() {
		t.Fatalf("a plain process crashed by SIGQUIT dumped no core here (core_pattern %q, suid_dumpable and limits as set): this machine cannot show that credhelper's start-up prevents one", strings.TrimSpace(string(pattern)))
	}
	t.Logf("control: sleep dumped a core (core_pattern %q; files %v)", strings.TrimSpace(string(pattern)), cores())
	for _, c := range cores() {
		os.Remove(c)
	}

	env := []string{"CREDHELPER_NO_AGENT=\x00unset", "GOTRACEBACK=crash"}
	ag := a.command("agent to crash", opts{uid: victimUID, dir: a.tmp, env: env}, "agent", "--profiles", "prod")
	a.start(ag)
	sock := filepath.Join(a.run, "credhelper", "agent.sock")
	waitFor(t, "the agent's socket", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	pair := a.stored().Pair
	a.exec("get through the agent", opts{uid: victimUID, env: []string{"CREDHELPER_NO_AGENT=\x00unset"}}, "get", "--profile", "prod").want(t, 0).stdout.allow(pair.AuthToken)

	pid := strconv.Itoa(ag.cmd.Process.Pid)
	limits, err := os.ReadFile("/proc/" + pid + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(line, "Max core file size") {
			if f := strings.Fields(strings.TrimPrefix(line, "Max core file size")); len(f) < 1 || f[0] != "0" {
				t.Errorf("the agent's core limit: %q, want a soft limit of 0", line)
			}
		}
	}
	fi, err := os.Stat("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 {
		t.Errorf("the agent's /proc entries belong to uid %d, the victim: it is still dumpable (PR_SET_DUMPABLE not cleared)", uid)
	}

	if err := ag.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	r := a.wait(ag, 30*time.Second)
	ws := ag.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		t.Fatalf("the agent did not crash on SIGQUIT with GOTRACEBACK=crash: exit %d\n%s", r.code, r.stderr.text)
	}
	if ws.CoreDump() {
		t.Error("the kernel reports that the agent dumped core")
	}
	if c := cores(); len(c) != 0 {
		t.Errorf("core files left by the agent: %v", c)
	}
	a.verify()
}
