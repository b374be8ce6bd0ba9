package agent

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// Peer is the process at the other end of a unix socket connection, as
// the kernel reports it.
type Peer struct {
	// UID is the peer's effective user id.
	UID int
	// PID is the peer's process id, or 0 where the platform does not say.
	PID int
}

// ErrPlatform reports that the agent cannot run on this platform: it needs
// the kernel to name the user at the other end of a unix socket, which
// Windows does not. Every command works without the agent.
var ErrPlatform = errors.New("agent: not available on " + runtime.GOOS + ": the agent needs the peer credentials of a unix socket, which this platform does not give; every command works without it")

// PeerCred returns the credentials of the process at the other end of c:
// SO_PEERCRED on Linux, LOCAL_PEERCRED and LOCAL_PEERPID on macOS. Where
// neither exists it returns an error wrapping ErrPlatform.
func PeerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var (
		p    Peer
		gerr error
	)
	if err := raw.Control(func(fd uintptr) { p, gerr = peerCred(int(fd)) }); err != nil {
		return Peer{}, err
	}
	if gerr != nil {
		return Peer{}, fmt.Errorf("agent: peer credentials: %w", gerr)
	}
	return p, nil
}

// Supported reports, as an error wrapping ErrPlatform, that the agent
// cannot run on this platform, or returns nil.
func Supported() error { return platformSupported() }
