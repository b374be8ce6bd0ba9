//go:build !unix

package fsutil

import (
	"io/fs"
	"os"
)

// writeAtomic replaces name in root with data: renameio does not support
// Windows, so this writes and fsyncs a temporary file beside it and
// renames it over name (MoveFileEx with MOVEFILE_REPLACE_EXISTING).
func writeAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	tmp := "." + name + ".tmp-" + randomSuffix()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// syncDir is a no-op: Windows cannot fsync a directory; its file system
// journals renames itself.
func syncDir(*os.Root) error { return nil }

// writable cannot be asked cheaply on Windows; a write that is denied
// fails with its own error.
func writable(string) error { return nil }
