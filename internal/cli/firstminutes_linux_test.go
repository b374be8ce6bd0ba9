package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processesMentioning returns the pids whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// Case 1: an interrupted demo stops its children, says so once and exits
// 130 (it used to exit 255 with "demo worker: signal: killed").
func TestDemoInterrupted(t *testing.T) {
	w := newFaceWorld(t, "")
	p := startWatched(t, w.env, "demo", "--processes", "2", "--goroutines", "2", "--duration", "60s")
	line := p.waitLine("demo: dev issuer on ", 60*time.Second)
	_, after, ok := strings.Cut(line, " and stored in ")
	if !ok {
		t.Fatalf("no credential path in %q", line)
	}
	dir := filepath.Dir(after)
	p.waitLine("demo: 2 processes x 2 goroutines", 10*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for len(processesMentioning(t, "demo-worker")) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // let the fleet refresh a little
	p.signal(syscall.SIGINT)
	code, stderr := p.wait(30 * time.Second)
	if code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, stderr)
	}
	_, tail, _ := strings.Cut(stderr, "demo: 2 processes x 2 goroutines")
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	want := "credhelper: demo interrupted: stopped its 2 worker processes and the loop of 'credhelper get'"
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("last line\n got %s\nwant %s", got, want)
	}
	if n := strings.Count(tail, "credhelper: "); n != 1 {
		t.Errorf("%d credhelper lines after the interrupt, want one:\n%s", n, tail)
	}
	if pids := processesMentioning(t, dir); len(pids) > 0 {
		t.Errorf("processes of the demo still running: %v", pids)
	}
}
