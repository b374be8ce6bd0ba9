//go:build unix

package cli

import (
	"os"
	"os/exec"
	"syscall"
)

// canDetach reports whether this platform can run a detached refresher.
const canDetach = true

// spawnDetached starts exe with args in a session of its own, stdin
// reading input, stdout discarded and stderr writing to log; it does not
// wait for it (a goroutine reaps it if this process lives on).
func spawnDetached(exe string, args []string, input []byte, log *os.File) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := w.Write(input); err != nil { // a request fits the pipe's buffer
		w.Close()
		return err
	}
	w.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stderr = r, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
