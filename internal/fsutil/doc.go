// Package fsutil is the one place where credhelper touches local state:
// credential files and their locks, journals, the config file, plugin
// binaries and the agent's socket directory all go through it.
//
// The rule for trusting a path is OpenSSH's StrictModes, extended to
// symbolic links and sticky directories:
//
//   - The path is resolved deliberately, once: each symbolic link is
//     followed to its final target (so a write through a link updates the
//     file it names instead of replacing the link), and each link must sit
//     in a trusted directory and, where that directory is shared and
//     sticky, belong to the current user or root.
//   - The resolved file and every directory above it, up to the root,
//     belong to the current user or root, and no directory is writable by
//     group or others unless it is sticky (as /tmp is), where only an
//     entry's owner can replace it.
//   - Files are opened relative to a directory held open after it was
//     checked (an os.Root), never following a link at the last step and
//     never blocking on a FIFO, then checked with fstat (regular file,
//     owner, mode) and read with a size cap.
//
// A refusal is a *PathError naming the path, what was found (owner, mode,
// type, size) and the command that fixes it; it wraps ErrUntrusted,
// ErrNotRegular or ErrTooLarge for callers that branch with errors.Is.
//
// Locks are github.com/gofrs/flock and atomic replacement is
// github.com/google/renameio (temporary file, fsync, rename), followed by
// an fsync of the directory. On Windows, where files have ACLs rather than
// owners and modes, the owner and mode checks are skipped (the user's
// profile directory is private by default), atomic replacement is a
// rename over the old file, and everything else holds.
//
// The XDG base directories are read here too, ignoring relative values as
// the XDG Base Directory specification requires.
package fsutil
