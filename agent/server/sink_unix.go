//go:build unix

package server

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// fileOwner returns the owner of path, if it exists.
func fileOwner(path string) (uid, gid int, ok bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	if fi.IsDir() {
		return 0, 0, false, &fs.PathError{Op: "write sink", Path: path, Err: errors.New("is a directory")}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false, nil
	}
	return int(st.Uid), int(st.Gid), true, nil
}

// keepOwner gives f the owner uid:gid unless it already has it.
func keepOwner(f *os.File, uid, gid int) error {
	if uid == os.Geteuid() && gid == os.Getegid() {
		return nil
	}
	return f.Chown(uid, gid)
}

// ownProcessGroup puts the command in a process group of its own and
// kills the whole group when its context ends, so a shell script's
// children do not outlive the timeout.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
