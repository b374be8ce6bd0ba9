//go:build unix

package testexec

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// StopDetached ends the processes a test started that outlived their
// parent (the background refreshers a one-shot credhelper command hands a
// due refresh to): every process of this user whose environment mentions
// dir, the test's own directory. It asks with SIGTERM, waits up to five
// seconds, then kills what is left, so the test's directory can be
// removed. Register it with t.Cleanup after t.TempDir, so it runs first.
// On systems without /proc it does nothing.
func StopDetached(dir string) {
	pids := detachedUnder(dir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pids = alive(pids)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pids = alive(pids)
	}
}

// detachedUnder lists the processes other than this one whose
// environment holds dir.
func detachedUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte(filepath.Clean(dir))
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, needle) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// alive keeps the pids that still run (zombies count as gone).
func alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// WaitDetached waits up to timeout for the processes StopDetached would
// stop to end by themselves, and reports whether they did.
func WaitDetached(dir string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if len(alive(detachedUnder(dir))) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
