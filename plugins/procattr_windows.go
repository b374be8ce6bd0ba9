package plugins

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// sysProcAttr has no parent-death signal on Windows; the served side's
// stdin and parent watch end the plugin when the host dies.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processExited reports whether pid is gone: its handle is signalled once
// the process ends.
func processExited(pid int) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return true
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err != nil || ev == windows.WAIT_OBJECT_0
}
