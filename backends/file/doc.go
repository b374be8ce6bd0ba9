// Package file is the embedded default backend: each credential is one JSON
// file on local disk.
//
// CompareAndSwap takes an exclusive flock on a sibling ".lock" file, compares
// the expected version (a SHA-256 of the current content) with the file on
// disk, writes the new value to a temporary file in the same directory,
// fsyncs it, renames it over the old one and fsyncs the directory. Readers
// take no lock: rename is atomic, so a Load sees the old or the new content,
// never a torn one. Files are created 0600 in directories created 0700, and a
// credential file that group or others can read is refused.
//
// Atomicity holds among processes on one host (and on network file systems
// whose flock is reliable); it is the backend for one machine's processes,
// not for a fleet.
package file
