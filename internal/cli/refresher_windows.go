//go:build windows

package cli

import (
	"errors"
	"os"
)

// canDetach is false: one-shot commands refresh in process on Windows.
const canDetach = false

var errLocked = errors.New("locked by another process")

func spawnDetached(string, []string, []byte, *os.File) error {
	return errors.New("background refresh is not available on Windows")
}

func lockOnce(string) (func(), error) {
	return nil, errors.New("background refresh is not available on Windows")
}
