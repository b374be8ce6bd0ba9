// Package file is the embedded default backend: each credential is one JSON
// file on local disk.
//
// CompareAndSwap takes an exclusive lock (github.com/gofrs/flock) on a
// sibling ".lock" file, compares the expected version (a SHA-256 of the
// current content) with the file on disk, and atomically replaces the file
// (temporary file, fsync, rename, fsync of the directory). Readers take no
// lock: rename is atomic, so a Load sees the old or the new content, never
// a torn one.
//
// Every path goes through the local-state trust rule (internal/fsutil): a
// key that is a symbolic link is resolved once to its final target, which
// is then read, locked and replaced (the link stays, so both spellings are
// one credential); the file and every directory above it must belong to
// the current user or root and not be writable by others (unless sticky);
// the file must be a regular file nobody else can read, at most 1 MiB.
// Files are created 0600 in directories created 0700. FIFOs, devices and
// directories are refused without being opened for a blocking read.
//
// Atomicity holds among processes on one host (and on network file systems
// whose locks are reliable); it is the backend for one machine's
// processes, not for a fleet.
package file
