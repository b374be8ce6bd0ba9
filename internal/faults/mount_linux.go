//go:build linux

package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mounts make a directory fail for every user, root included: permission
// bits do not stop root (CAP_DAC_OVERRIDE), but a read-only mount and a
// full file system do. They need CAP_SYS_ADMIN (the tests run as root).

// ReadOnly bind-mounts dir over itself read-only: reads work, every write
// fails with EROFS, as when the kernel remounts a failing disk read-only.
// The returned function undoes it.
func ReadOnly(dir string) (undo func() error, err error) {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return nil, mountError("bind-mount", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return nil, mountError("remount read-only", dir, err)
	}
	return func() error { return unmount(dir) }, nil
}

// Full mounts a small tmpfs on dir (hiding what dir held) and fills it, so
// that creating an empty file works but writing any data fails with
// ENOSPC. The returned function unmounts it.
func Full(dir string) (undo func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		return nil, mountError("mount tmpfs on", dir, err)
	}
	undo = func() error { return unmount(dir) }
	f, err := os.Create(filepath.Join(dir, ".fill"))
	if err != nil {
		undo()
		return nil, fmt.Errorf("faults: fill %s: %w", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return undo, nil
			}
			undo()
			return nil, fmt.Errorf("faults: fill %s: %w", dir, err)
		}
	}
}

func unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
			return mountError("unmount", dir, err)
		}
	}
	return nil
}

func mountError(op, dir string, err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("faults: %s %s: %w: the file-system faults need CAP_SYS_ADMIN (run the tests as root, as CI does)", op, dir, err)
	}
	return fmt.Errorf("faults: %s %s: %w", op, dir, err)
}
