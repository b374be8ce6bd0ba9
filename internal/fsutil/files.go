package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
)

// OpenParent resolves path and opens the directory that holds its target,
// returning it with the target's name in it. The directory must exist.
func OpenParent(path string, rule Rule) (d *Dir, name string, err error) {
	resolved, err := Resolve(path, rule.what())
	if err != nil {
		return nil, "", err
	}
	d, err = openResolvedDir(filepath.Dir(resolved), Rule{What: "directory of " + rule.what()})
	if err != nil {
		return nil, "", err
	}
	return d, filepath.Base(resolved), nil
}

// ReadFile resolves path, checks the file and every directory above it,
// and reads it up to rule's size cap: the one way credhelper reads a file
// of local state. A missing file is an error wrapping fs.ErrNotExist.
func ReadFile(path string, rule Rule) ([]byte, error) {
	d, name, err := OpenParent(path, rule)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(name, rule)
}

// Writable reports whether the current user may create files in dir.
func Writable(dir string) error { return writable(dir) }

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
