//go:build !unix

package testexec

import "time"

// StopDetached does nothing where there is no /proc to find detached
// processes by.
func StopDetached(dir string) {}

// WaitDetached reports true at once where there is no /proc.
func WaitDetached(dir string, timeout time.Duration) bool { return true }
