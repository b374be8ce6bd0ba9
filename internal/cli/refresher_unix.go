//go:build unix

package cli

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// canDetach reports whether this platform can run a detached refresher.
const canDetach = true

// errLocked reports a lock another process holds.
var errLocked = errors.New("locked by another process")

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

// lockOnce takes an exclusive lock on path without waiting: errLocked if
// another process holds it.
func lockOnce(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
