//go:build unix

package main

import (
	"os"
	"syscall"
)

// runFull replaces this process with credhelper-full (same arguments,
// same environment); it returns only on failure.
func runFull(full string) error {
	return syscall.Exec(full, os.Args, os.Environ())
}
