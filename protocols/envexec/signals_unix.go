//go:build unix

package envexec

import "syscall"

// signalsByName are the signals --on-rotate signal:NAME accepts.
var signalsByName = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"ALRM": syscall.SIGALRM, "WINCH": syscall.SIGWINCH,
}
