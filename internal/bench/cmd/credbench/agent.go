package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/credhelper/credhelper/agent"
)

// agentHome is a private set of XDG directories for one agent: the config
// file at its XDG location, the socket under XDG_RUNTIME_DIR and journals
// under XDG_STATE_HOME.
type agentHome struct {
	dir, config, socket string
	env                 []string
}

// newAgentHome creates the directories under a fresh short temporary path
// (a unix socket path must stay under 108 bytes) and writes config.
func newAgentHome(config string) (*agentHome, error) {
	dir, err := os.MkdirTemp("", "cbag")
	if err != nil {
		return nil, err
	}
	h := &agentHome{dir: dir}
	run, cfgHome, state := filepath.Join(dir, "run"), filepath.Join(dir, "config"), filepath.Join(dir, "state")
	for _, d := range []string{run, filepath.Join(cfgHome, "credhelper"), state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	h.config = filepath.Join(cfgHome, "credhelper", "config.toml")
	if err := os.WriteFile(h.config, []byte(config), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	h.socket = filepath.Join(run, "credhelper", "agent.sock")
	// Later entries win over the inherited environment (exec keeps the
	// last value of a name), so nothing of the caller's own set-up leaks in.
	h.env = []string{
		"XDG_RUNTIME_DIR=" + run, "XDG_CONFIG_HOME=" + cfgHome, "XDG_STATE_HOME=" + state,
		"CREDHELPER_CONFIG=", "CREDHELPER_PROFILE=", "CREDHELPER_BACKEND=", "CREDHELPER_ISSUER=",
		"CREDHELPER_NO_AGENT=", "CREDHELPER_ENDPOINT=", agent.SocketEnv + "=",
	}
	return h, nil
}

func (h *agentHome) remove() { os.RemoveAll(h.dir) }

// agentProc is a running `credhelper agent` process.
type agentProc struct {
	cmd  *exec.Cmd
	log  *tailBuffer
	done chan struct{}
	err  error
}

// startAgent starts `bin agent` in home and waits until its socket answers
// a ping: the agent has warmed every profile by then.
// Its log is JSON; commits, when set, reads it as it is written.
func startAgent(bin string, home *agentHome, timeout time.Duration, commits ...*commitLog) (*agentProc, error) {
	a := &agentProc{log: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "agent", "--log-format", "json")
	a.cmd.Env = append(os.Environ(), home.env...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if len(commits) > 0 {
		commits[0].next = a.log
		a.cmd.Stderr = commits[0]
	}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	c := agent.Client{Path: home.socket}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Ping(ctx)
		cancel()
		if err == nil {
			return a, nil
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("agent exited before serving (%v): %s", a.err, a.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("agent did not answer on %s within %v: %s", home.socket, timeout, a.log.String())
		}
	}
}

// pid is the agent's process id (the front execs credhelper-full in place,
// so it stays the same).
func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// reload runs `bin agent reload` for the agent and returns how long it
// took: from the command's start until the agent reported the reload done.
func (a *agentProc) reload(bin string, home *agentHome) (time.Duration, error) {
	cmd := exec.Command(bin, "agent", "reload")
	cmd.Env = append(os.Environ(), home.env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("agent reload: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return time.Since(start), nil
}

// stop sends SIGTERM and waits; SIGKILL after 30 seconds.
func (a *agentProc) stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("agent did not stop within 30s of SIGTERM: %s", a.log.String())
	}
	var ee *exec.ExitError
	if a.err != nil && !errors.As(a.err, &ee) {
		return a.err
	}
	if a.err != nil {
		return fmt.Errorf("agent exited with %v: %s", a.err, a.log.String())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// procStat is a process's resident memory and CPU time so far, from /proc.
type procStat struct {
	RSSKB int64
	// AnonKB and FileKB split RSSKB (RssAnon, RssFile): memory the
	// process allocated, and pages of its binary and libraries mapped in.
	AnonKB, FileKB int64
	CPU            time.Duration // utime + stime, in clock ticks (10ms)
	// Sched is the time its threads have run, to the nanosecond
	// (/proc/PID/task/*/schedstat): precise enough for an idle agent.
	Sched time.Duration
}

// readProc reads /proc/PID/status (VmRSS) and /proc/PID/stat (utime and
// stime, in clock ticks).
func readProc(pid int) (procStat, error) {
	var st procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		for prefix, dst := range map[string]*int64{"VmRSS:": &st.RSSKB, "RssAnon:": &st.AnonKB, "RssFile:": &st.FileKB} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				if f := strings.Fields(v); len(f) > 0 {
					*dst, _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stt) * time.Second / time.Duration(clockTicks())
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return st, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			st.Sched += time.Duration(ns)
		}
	}
	return st, nil
}

var ticksOnce = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
})

func clockTicks() int64 { return ticksOnce() }
