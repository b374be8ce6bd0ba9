//go:build unix && !linux

package coredump

// Disable sets the process's soft core size limit to zero.
func Disable() error { return zeroCoreLimit() }
