package coredump

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDisable runs Disable in a child (it cannot be undone for the test
// process) and reads the result back through prctl and getrlimit there.
func TestDisable(t *testing.T) {
	if os.Getenv("COREDUMP_TEST_CHILD") == "1" {
		if err := Disable(); err != nil {
			t.Fatal(err)
		}
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_CORE, &lim)
		if err != nil || d != 0 || lim.Cur != 0 {
			t.Fatalf("after Disable: dumpable %d (%v), RLIMIT_CORE soft %d", d, err, lim.Cur)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDisable$", "-test.v")
	cmd.Env = append(os.Environ(), "COREDUMP_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDisable") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
