package envexec

import "syscall"

// signalsByName are the signals --on-rotate signal:NAME accepts; Windows
// has no SIGUSR1, SIGUSR2 or SIGWINCH.
var signalsByName = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM, "ALRM": syscall.SIGALRM,
}
