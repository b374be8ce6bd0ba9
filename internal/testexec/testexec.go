// Package testexec re-executes the running test binary to run exactly one
// test in a child process, which is how the multi-process tests (the
// backend conformance races, the linearizability histories, the refresh
// fleets) get real OS processes that share nothing but the store.
package testexec

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Command returns a command that runs this test binary again with only the
// test (or subtest) called name, for at most timeout. The caller adds the
// environment that tells the child what to do.
func Command(name string, timeout time.Duration) *exec.Cmd {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", fmt.Sprintf("-test.timeout=%v", timeout))
}
