//go:build !linux

package faults

import (
	"errors"
	"runtime"
)

// errNoMounts reports that the mount faults need Linux.
var errNoMounts = errors.New("faults: read-only and full file system faults need Linux bind and tmpfs mounts, not " + runtime.GOOS)

// ReadOnly needs Linux; elsewhere it fails.
func ReadOnly(string) (func() error, error) { return nil, errNoMounts }

// Full needs Linux; elsewhere it fails.
func Full(string) (func() error, error) { return nil, errNoMounts }
