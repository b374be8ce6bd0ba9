package plugins

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// execPath returns the path that executes the open binary f itself:
// /proc/self/fd/N, which the child resolves to the descriptor it inherited
// (close-on-exec closes it only once the exec succeeded). Whatever happens
// to path meanwhile, the child runs the bytes that were hashed. A
// descriptor below 3 would be overwritten by the child's stdio, so it is
// moved up first; the returned file replaces f.
func execPath(f *os.File, path string) (*os.File, string, error) {
	fd := int(f.Fd())
	if fd < 3 {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("plugins: %s: %w", path, err)
		}
		f, fd = os.NewFile(uintptr(nfd), path), nfd
	}
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if _, err := os.Stat(p); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("plugins: cannot execute %s from its checked descriptor (is /proc mounted?): %w: %w", path, err, ErrUnsafeBinary)
	}
	return f, p, nil
}
