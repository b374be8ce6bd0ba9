//go:build !linux

package faults

import (
	"errors"
	"fmt"
)

// errNoMounts is what the mount faults return where they are not built:
// bind mounts and tmpfs are Linux's.
var errNoMounts = errors.New("faults: read-only and full mounts need Linux (bind mounts and tmpfs, as root)")

// ReadOnly is Linux-only; see mount_linux.go.
func ReadOnly(dir string) (undo func() error, err error) {
	return nil, fmt.Errorf("%w: cannot make %s read-only", errNoMounts, dir)
}

// Full is Linux-only; see mount_linux.go.
func Full(dir string) (undo func() error, err error) {
	return nil, fmt.Errorf("%w: cannot fill %s", errNoMounts, dir)
}
