package cli

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to exec's child; Windows delivers only
// interrupt and termination.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
