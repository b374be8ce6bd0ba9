//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts c in a process group of its own, so that a
// terminal's Ctrl-C reaches only the parent, which stops it.
func ownProcessGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
