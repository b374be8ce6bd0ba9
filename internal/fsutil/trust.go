package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Sentinel errors a *PathError wraps.
var (
	// ErrUntrusted reports a path others could have written: a file or
	// directory owned by another user, a directory group or others can
	// write, a secret others can read, or a symbolic link where none may
	// be.
	ErrUntrusted = errors.New("untrusted path")
	// ErrNotRegular reports a FIFO, device, socket or directory where a
	// regular file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge reports a file over the size cap of what it holds.
	ErrTooLarge = errors.New("file too large")
)

// DefaultMaxSize caps what ReadFile reads when a Rule sets no MaxSize.
const DefaultMaxSize = 1 << 20

// maxLinks bounds the symbolic links one resolution follows, as the kernel
// does (MAXSYMLINKS is 40 on Linux).
const maxLinks = 40

// Rule says what a file must be beyond the path rule that every file and
// directory passes.
type Rule struct {
	// What names the file in errors: "credential file", "config file".
	What string
	// Private refuses a file that group or others can read or write: it
	// holds a secret.
	Private bool
	// Mine refuses a file not owned by the current user; otherwise root
	// may own it too.
	Mine bool
	// MaxSize caps the size of the file; zero means DefaultMaxSize.
	MaxSize int64
}

func (r Rule) what() string {
	if r.What == "" {
		return "file"
	}
	return r.What
}

func (r Rule) maxSize() int64 {
	if r.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return r.MaxSize
}

// PathError is a refusal of a path by the trust rule.
type PathError struct {
	// What names the refused file or directory ("credential file",
	// "directory above config file ...").
	What string
	// Path is the refused path, after links were resolved.
	Path string
	// Context, if set, says which file the refused directory leads to.
	Context string
	// Problem says what was found: owner, mode, type or size.
	Problem string
	// Fix is the command or step that fixes it.
	Fix string
	// Err is ErrUntrusted, ErrNotRegular or ErrTooLarge.
	Err error
}

func (e *PathError) Error() string {
	s := e.What + " " + e.Path
	if e.Context != "" {
		s += " (" + e.Context + ")"
	}
	s += " " + e.Problem
	if e.Fix != "" {
		s += ": " + e.Fix
	}
	return s
}

// Unwrap returns the sentinel the refusal wraps.
func (e *PathError) Unwrap() error { return e.Err }

// Resolve returns the final target of path, made absolute: every symbolic
// link on the way is followed, however many there are, and the directories
// it passes through, including those that hold the links, must pass the
// trust rule. Components that do not exist yet are kept as they are, so a
// file can be created at the result. what names the file in errors.
func Resolve(path, what string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	vol := filepath.VolumeName(abs)
	cur := vol + string(filepath.Separator)
	fi, err := os.Lstat(cur)
	if err != nil {
		return "", err
	}
	if err := checkDir(cur, fi, what, abs); err != nil {
		return "", err
	}
	todo := components(abs[len(vol):])
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			// cur holds no links, so its lexical parent is its real one.
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, todo...)...), nil
		}
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", what, abs, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", &PathError{What: what, Path: abs, Problem: fmt.Sprintf("goes through more than %d symbolic links", maxLinks), Fix: "point it at the file itself", Err: ErrUntrusted}
			}
			// In a sticky shared directory anyone may plant a link;
			// elsewhere cur passed the rule, so only trusted users can.
			if err := checkOwner(next, fi, "symbolic link to "+what, false); err != nil {
				return "", err
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("%s %s: %w", what, abs, err)
			}
			if filepath.IsAbs(target) {
				tv := filepath.VolumeName(target)
				cur = tv + string(filepath.Separator)
				target = target[len(tv):]
			}
			todo = append(components(target), todo...)
			continue
		}
		if len(todo) == 0 {
			return next, nil // the file itself; checked when opened
		}
		if !fi.IsDir() {
			return "", &PathError{What: "path of " + what, Path: abs, Problem: "goes through " + next + ", which is not a directory", Fix: "check the path", Err: ErrNotRegular}
		}
		if err := checkDir(next, fi, what, abs); err != nil {
			return "", err
		}
		cur = next
	}
	return cur, nil
}

func components(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return os.IsPathSeparator(uint8(r)) })
}

// checkDir applies the directory rule to dir, which leads to (or is) the
// file at target: owned by the current user or root, and not writable by
// group or others unless sticky.
func checkDir(dir string, fi fs.FileInfo, what, target string) error {
	label, context := "directory", "above "+what+" "+target
	if dir == target {
		label, context = what, ""
	}
	if err := ownerProblem(dir, fi, label, false); err != nil {
		err.Context = context
		return err
	}
	if !hasOwners {
		return nil
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return &PathError{What: label, Path: dir, Context: context,
			Problem: fmt.Sprintf("is writable by group or others (mode %04o, owner %s), so another user could replace what it holds", perm, ownerName(fi)),
			Fix:     "run chmod go-w " + dir + ", or keep the " + what + " in a directory only you can write",
			Err:     ErrUntrusted}
	}
	return nil
}

// checkOwner refuses fi unless the current user (or, unless mine, root)
// owns it.
func checkOwner(path string, fi fs.FileInfo, what string, mine bool) error {
	if err := ownerProblem(path, fi, what, mine); err != nil {
		return err
	}
	return nil
}

// ownerProblem is checkOwner's refusal, typed.
func ownerProblem(path string, fi fs.FileInfo, what string, mine bool) *PathError {
	uid, ok := ownerOf(fi)
	if !ok {
		return nil
	}
	me := os.Geteuid()
	if uid == me || (uid == 0 && !mine) {
		return nil
	}
	who := "neither you (" + userName(me) + ") nor root"
	if mine {
		who = "not you (" + userName(me) + ")"
	}
	return &PathError{What: what, Path: path,
		Problem: "belongs to " + userName(uid) + ", " + who + ", so it cannot be trusted",
		Fix:     "remove it (it may need root: sudo rm " + path + ") or use a path of your own",
		Err:     ErrUntrusted}
}

// CheckFile applies rule to the file at path whose fstat is fi: a regular
// file, owned by the current user (or root unless rule.Mine), not writable
// by group or others (nor readable, if rule.Private), and not over the
// size cap.
func CheckFile(path string, fi fs.FileInfo, rule Rule) error {
	what := rule.what()
	if !fi.Mode().IsRegular() {
		return &PathError{What: what, Path: path, Problem: "is " + typeName(fi.Mode()) + ", not a regular file", Fix: "point it at a regular file", Err: ErrNotRegular}
	}
	if err := checkOwner(path, fi, what, rule.Mine); err != nil {
		return err
	}
	if hasOwners {
		perm := fi.Mode().Perm()
		switch {
		case rule.Private && perm&0o077 != 0:
			return &PathError{What: what, Path: path, Problem: fmt.Sprintf("is accessible by group or others (mode %04o)", perm), Fix: "run 'chmod 600 " + path + "'", Err: ErrUntrusted}
		case perm&0o022 != 0:
			return &PathError{What: what, Path: path, Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm), Fix: "run chmod go-w " + path, Err: ErrUntrusted}
		}
	}
	if max := rule.maxSize(); fi.Size() > max {
		return &PathError{What: what, Path: path, Problem: fmt.Sprintf("is %d bytes, over the %d-byte limit for a %s", fi.Size(), max, what), Fix: "point it at the right file", Err: ErrTooLarge}
	}
	return nil
}

// typeName names a non-regular file type the way a user would.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// ownerName names fi's owner as "uid N (name)".
func ownerName(fi fs.FileInfo) string {
	uid, ok := ownerOf(fi)
	if !ok {
		return "unknown"
	}
	return userName(uid)
}

// userName returns "uid N (name)", or "uid N" for a uid without a name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return "uid " + strconv.Itoa(uid) + " (" + u.Username + ")"
	}
	return "uid " + strconv.Itoa(uid)
}

// CheckOwned refuses the file or directory at path, whose Lstat is fi,
// unless the current user owns it and nobody else can write it. what
// names it in errors.
func CheckOwned(path string, fi fs.FileInfo, what string) error {
	if err := checkOwner(path, fi, what, true); err != nil {
		return err
	}
	if hasOwners && fi.Mode().Perm()&0o022 != 0 {
		return &PathError{What: what, Path: path, Problem: fmt.Sprintf("is writable by group or others (mode %04o)", fi.Mode().Perm()), Fix: "run chmod go-w " + path, Err: ErrUntrusted}
	}
	return nil
}
