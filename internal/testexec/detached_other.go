//go:build !unix

package testexec

// StopDetached does nothing where there is no /proc to find detached
// processes by.
func StopDetached(dir string) {}
