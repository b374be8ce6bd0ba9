//go:build !linux

package main

import (
	"errors"
	"runtime"
)

// sinkWatch needs inotify; outside Linux the sink measurement is skipped.
type sinkWatch struct{}

func watchSinks(string) (*sinkWatch, error) {
	return nil, errors.New("credbench: watching sink renames needs Linux inotify, not " + runtime.GOOS)
}

func (w *sinkWatch) close() []sinkRename { return nil }
