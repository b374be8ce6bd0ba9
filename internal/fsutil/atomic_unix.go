//go:build unix

package fsutil

import (
	"io/fs"
	"os"

	"github.com/google/renameio/v2"
)

// writeAtomic replaces name in root with data through renameio: a
// temporary file beside it, written, fsynced and renamed over it.
func writeAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	pf, err := renameio.NewPendingFile(name, renameio.WithRoot(root), renameio.WithStaticPermissions(perm))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	return pf.CloseAtomicallyReplace()
}

// syncDir fsyncs the directory root holds.
func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writable reports whether the current user may create files in dir.
func writable(dir string) error {
	return accessW(dir)
}
