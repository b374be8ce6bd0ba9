//go:build unix

package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/google/renameio/v2"
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

// writeKeepingOwner replaces path with data through renameio, giving the
// new file the old one's owner uid:gid before it takes the old one's place
// (an agent run as root writing a file a service reads).
func writeKeepingOwner(path string, data []byte, mode os.FileMode, uid, gid int) error {
	pf, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(mode))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	if err := pf.File.Chown(uid, gid); err != nil {
		return fmt.Errorf("keep the owner %d:%d of %s: %w", uid, gid, path, err)
	}
	return pf.CloseAtomicallyReplace()
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
