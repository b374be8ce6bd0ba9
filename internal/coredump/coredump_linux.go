package coredump

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Disable marks the process not dumpable and sets its soft core size
// limit to zero.
func Disable() error {
	var errs []error
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		errs = append(errs, fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err))
	}
	errs = append(errs, zeroCoreLimit())
	return errors.Join(errs...)
}
