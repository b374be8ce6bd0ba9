package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Dir is a directory that passed the trust rule, held open: files in it are
// opened relative to it (an os.Root), so nothing done to the path above it
// afterwards changes which directory they are in. A Dir is safe for
// concurrent use; Close it when done.
type Dir struct {
	path string
	root *os.Root
}

// OpenDir resolves path and opens the directory it names, which must exist
// and pass the path rule; rule.Mine also requires the current user as its
// owner, and rule.Private refuses a directory group or others can enter.
func OpenDir(path string, rule Rule) (*Dir, error) {
	resolved, err := Resolve(path, rule.what())
	if err != nil {
		return nil, err
	}
	return openResolvedDir(resolved, rule)
}

// MkdirAll is OpenDir that first creates the missing directories of path,
// each with mode 0700.
func MkdirAll(path string, rule Rule) (*Dir, error) {
	resolved, err := Resolve(path, rule.what())
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(resolved); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(resolved, 0o700); err != nil {
			return nil, fmt.Errorf("%s %s: %w", rule.what(), resolved, err)
		}
		// Whatever existed or appeared on the way must still pass.
		again, err := Resolve(resolved, rule.what())
		if err != nil {
			return nil, err
		}
		if again != resolved {
			return nil, &PathError{What: rule.what(), Path: resolved, Problem: "changed while it was being created (now " + again + ")", Fix: "check who else writes there", Err: ErrUntrusted}
		}
	}
	return openResolvedDir(resolved, rule)
}

func openResolvedDir(dir string, rule Rule) (*Dir, error) {
	what := rule.what()
	// os.OpenRoot opens without O_DIRECTORY, so a FIFO would block it.
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return nil, &PathError{What: what, Path: dir, Problem: "is " + typeName(fi.Mode()) + ", not a directory", Fix: "point it at a directory", Err: ErrNotRegular}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		if fi, serr := os.Lstat(dir); serr == nil {
			if !fi.IsDir() {
				return nil, &PathError{What: what, Path: dir, Problem: "is " + typeName(fi.Mode()) + ", not a directory", Fix: "point it at a directory", Err: ErrNotRegular}
			}
			// Say whose it is rather than just "permission denied".
			if cerr := checkDir(dir, fi, what, dir); cerr != nil {
				return nil, cerr
			}
			if rule.Mine {
				if cerr := checkOwner(dir, fi, what, true); cerr != nil {
					return nil, cerr
				}
			}
		}
		return nil, fmt.Errorf("%s %s: %w", what, dir, unwrapPath(err))
	}
	// Check what was opened, not what the path names now.
	fi, err := root.Stat(".")
	if err == nil {
		err = checkDir(dir, fi, what, dir)
	}
	if err == nil && rule.Mine {
		err = checkOwner(dir, fi, what, true)
	}
	if err == nil && rule.Private && hasOwners && fi.Mode().Perm()&0o077 != 0 {
		err = &PathError{What: what, Path: dir, Problem: fmt.Sprintf("is open to other users (mode %04o)", fi.Mode().Perm()), Fix: "run chmod 700 " + dir, Err: ErrUntrusted}
	}
	if err != nil {
		root.Close()
		return nil, err
	}
	return &Dir{path: dir, root: root}, nil
}

// Path returns the directory's resolved path.
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in d.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Lstat describes name in d without following a link.
func (d *Dir) Lstat(name string) (fs.FileInfo, error) { return d.root.Lstat(name) }

// Remove removes name from d.
func (d *Dir) Remove(name string) error { return d.root.Remove(name) }

// Rename renames oldname to newname within d, replacing newname.
func (d *Dir) Rename(oldname, newname string) error { return d.root.Rename(oldname, newname) }

// Names lists the entries of d.
func (d *Dir) Names() ([]string, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// Open opens name in d for reading after checking it against rule: a
// link, FIFO, device or directory is refused before it is opened, the
// open never follows a link or blocks, and the opened file's fstat must
// be the file that was checked and pass rule. fi is that fstat.
func (d *Dir) Open(name string, rule Rule) (f *os.File, fi fs.FileInfo, err error) {
	path := d.Join(name)
	lfi, err := d.root.Lstat(name)
	if err != nil {
		return nil, nil, err
	}
	if !lfi.Mode().IsRegular() {
		if lfi.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, &PathError{What: rule.what(), Path: path, Problem: "is a symbolic link where none may be", Fix: "check who else writes in " + d.path, Err: ErrUntrusted}
		}
		return nil, nil, CheckFile(path, lfi, rule)
	}
	f, err = d.root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err == nil && !os.SameFile(lfi, fi) {
		err = &PathError{What: rule.what(), Path: path, Problem: "was replaced while it was being opened", Fix: "check who else writes in " + d.path, Err: ErrUntrusted}
	}
	if err == nil {
		err = CheckFile(path, fi, rule)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// OpenAppend opens name in d for appending, creating it with mode perm if
// missing. An existing file is checked as Open checks it (rule's size cap
// aside: the caller truncates a log that grew too large).
func (d *Dir) OpenAppend(name string, perm fs.FileMode, rule Rule) (*os.File, error) {
	path := d.Join(name)
	lfi, err := d.root.Lstat(name)
	if err == nil && !lfi.Mode().IsRegular() {
		if lfi.Mode()&fs.ModeSymlink != 0 {
			return nil, &PathError{What: rule.what(), Path: path, Problem: "is a symbolic link where none may be", Fix: "check who else writes in " + d.path, Err: ErrUntrusted}
		}
		return nil, CheckFile(path, lfi, rule)
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|openFlags, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && lfi != nil && !os.SameFile(lfi, fi) {
		err = &PathError{What: rule.what(), Path: path, Problem: "was replaced while it was being opened", Fix: "check who else writes in " + d.path, Err: ErrUntrusted}
	}
	if err == nil {
		unlimited := rule
		unlimited.MaxSize = 1<<63 - 1
		err = CheckFile(path, fi, unlimited)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads name in d, opened as Open does, up to rule's size cap.
func (d *Dir) ReadFile(name string, rule Rule) ([]byte, error) {
	f, _, err := d.Open(name, rule)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, d.Join(name), rule)
}

func readCapped(f *os.File, path string, rule Rule) ([]byte, error) {
	max := rule.maxSize()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", rule.what(), path, unwrapPath(err))
	}
	if int64(len(data)) > max {
		return nil, &PathError{What: rule.what(), Path: path, Problem: fmt.Sprintf("grew over the %d-byte limit for a %s while it was read", max, rule.what()), Fix: "point it at the right file", Err: ErrTooLarge}
	}
	return data, nil
}

// WriteFile atomically replaces (or creates) name in d with data, mode
// perm: a temporary file in d is written, fsynced and renamed over name,
// then d is fsynced so the rename survives a crash. A link at name is
// replaced, never followed.
func (d *Dir) WriteFile(name string, data []byte, perm fs.FileMode) error {
	if err := writeAtomic(d.root, name, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", d.Join(name), unwrapPath(err))
	}
	return d.Sync()
}

// CreateFile atomically creates name in d holding data, mode perm, unless
// name exists: then it returns an error wrapping fs.ErrExist and leaves
// the existing file alone. Readers never see a partial file.
func (d *Dir) CreateFile(name string, data []byte, perm fs.FileMode) error {
	tmp := "." + name + ".new-" + randomSuffix()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", d.Join(tmp), unwrapPath(err))
	}
	defer d.root.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", d.Join(tmp), unwrapPath(err))
	}
	if err := d.root.Link(tmp, name); err != nil {
		return fmt.Errorf("create %s: %w", d.Join(name), unwrapPath(err))
	}
	return d.Sync()
}

// Sync fsyncs d, making renames and removals in it durable.
func (d *Dir) Sync() error {
	if err := syncDir(d.root); err != nil {
		return fmt.Errorf("fsync directory %s: %w", d.path, unwrapPath(err))
	}
	return nil
}

// Lock is an exclusive lock on a lock file, held until Unlock.
type Lock struct {
	fl *flock.Flock
}

// Unlock releases the lock and closes the lock file.
func (l *Lock) Unlock() error { return l.fl.Unlock() }

// lockRule is what a lock file must be: an empty regular file nobody else
// can write.
var lockRule = Rule{What: "lock file", MaxSize: 1 << 20}

// TryLock takes the exclusive lock on the lock file name in d, creating it
// (0600) if missing, without waiting: ok is false while another holds it.
// A link, FIFO or device at name, or a lock file another user owns or can
// write, is refused. The lock counts only if name still names the locked
// file once it is held, so a lock file removed and created again by its
// previous holder is never mistaken for a free one.
func (d *Dir) TryLock(name string) (l *Lock, ok bool, err error) {
	path := d.Join(name)
	if fi, err := d.root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, false, &PathError{What: lockRule.What, Path: path, Problem: "is a symbolic link where none may be", Fix: "remove it", Err: ErrUntrusted}
		}
		return nil, false, CheckFile(path, fi, lockRule)
	}
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR|lockFlags), flock.SetPermissions(0o600))
	got, err := fl.TryLock()
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, unwrapPath(err))
	}
	if !got {
		return nil, false, nil
	}
	held, err := fl.Stat() // fstat of the locked descriptor
	if err == nil {
		err = CheckFile(path, held, lockRule)
	}
	if err != nil {
		fl.Unlock()
		return nil, false, err
	}
	if now, err := d.root.Lstat(name); err != nil || !os.SameFile(held, now) {
		fl.Unlock()
		return nil, false, nil
	}
	return &Lock{fl: fl}, true, nil
}

// Lock takes the lock TryLock takes, polling while another holds it: the
// first wait is poll, doubling up to 50ms, until ctx ends.
func (d *Dir) Lock(ctx context.Context, name string, poll time.Duration) (*Lock, error) {
	wait := poll
	for {
		l, ok, err := d.TryLock(name)
		if err != nil || ok {
			return l, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for lock %s: %w", d.Join(name), ctx.Err())
		case <-t.C:
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// unwrapPath drops an *fs.PathError's own path and operation, which the
// caller's message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
