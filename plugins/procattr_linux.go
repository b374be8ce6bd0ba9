package plugins

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr asks the kernel to SIGKILL the plugin when the host dies, even
// by SIGKILL. (The signal follows the death of the thread that forked the
// child; the Go runtime retires no threads except those a goroutine left
// locked, which this package never does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processExited reports whether our child pid has exited, even if it is
// not reaped yet, without reaping it (go-plugin does that).
func processExited(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return true // ECHILD: already reaped
	}
	return info.Signo != 0 // zero when the child still runs
}
