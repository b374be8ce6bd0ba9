//go:build !unix

package fsutil

import "io/fs"

// hasOwners is false outside unix (Windows): files carry ACLs, not an owner uid and
// permission bits, and a user's profile directory is private by default.
const hasOwners = false

// openFlags are added to every open; Windows has no FIFOs in the file
// system to block on.
const openFlags = 0

// lockFlags are added to the open of a lock file.
const lockFlags = 0

// ownerOf reports no owner outside unix.
func ownerOf(fs.FileInfo) (int, bool) { return 0, false }
