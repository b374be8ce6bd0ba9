//go:build windows

package cli

import (
	"errors"
	"os"
)

// canDetach is false: one-shot commands refresh in process on Windows.
const canDetach = false

func spawnDetached(string, []string, []byte, *os.File) error {
	return errors.New("background refresh is not available on Windows")
}
