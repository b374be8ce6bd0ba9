package main

import (
	"fmt"
	"runtime"
)

func procs() int { return runtime.GOMAXPROCS(0) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
