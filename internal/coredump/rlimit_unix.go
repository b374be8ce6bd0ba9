//go:build unix

package coredump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// zeroCoreLimit sets the soft RLIMIT_CORE to 0, keeping the hard limit.
func zeroCoreLimit() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		return fmt.Errorf("getrlimit(RLIMIT_CORE): %w", err)
	}
	lim.Cur = 0
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}
