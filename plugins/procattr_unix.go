//go:build unix && !linux

package plugins

import "syscall"

// sysProcAttr has no parent-death signal outside Linux; the served side's
// stdin and parent watch end the plugin when the host dies.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processExited reports whether pid is gone. A zombie counts as running
// here; the call on its dead connection then fails and marks it lost.
func processExited(pid int) bool {
	return syscall.Kill(pid, 0) != nil
}
