//go:build !unix

package server

import (
	"errors"
	"os"
	"os/exec"
)

// fileOwner reports no owner: ownership is not kept on this system.
func fileOwner(string) (uid, gid int, ok bool, err error) { return 0, 0, false, nil }

// writeKeepingOwner is never called here: fileOwner reports no owner.
func writeKeepingOwner(string, []byte, os.FileMode, int, int) error {
	return errors.New("keeping a file's owner is not supported on this system")
}

func ownProcessGroup(*exec.Cmd) {}
