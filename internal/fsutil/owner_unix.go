//go:build unix

package fsutil

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// hasOwners says that files have an owner and permission bits to check.
const hasOwners = true

// openFlags are added to every open: never block on a FIFO.
const openFlags = syscall.O_NONBLOCK

// lockFlags are added to the open of a lock file: never follow a link at
// the last step, never block on a FIFO.
const lockFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// ownerOf returns the uid that owns the file fi describes.
func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// accessW reports whether the current user may write in dir.
func accessW(dir string) error {
	return unix.Access(dir, unix.W_OK)
}
