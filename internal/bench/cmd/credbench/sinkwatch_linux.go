package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sinkWatch records, with inotify, when each JSON sink file in dir was
// renamed into place and which generation it then held.
type sinkWatch struct {
	fd   int
	dir  string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	renamed []sinkRename
}

func watchSinks(dir string) (*sinkWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &sinkWatch{fd: fd, dir: dir, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *sinkWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 100); n <= 0 {
			continue
		}
		n, err := unix.Read(w.fd, buf)
		now := time.Now()
		if err != nil || n <= 0 {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			profile, ok := strings.CutSuffix(name, ".json")
			if !ok {
				continue
			}
			b, err := os.ReadFile(filepath.Join(w.dir, name))
			if err != nil {
				continue
			}
			var doc struct {
				Generation uint64 `json:"generation"`
			}
			if json.Unmarshal(b, &doc) != nil {
				continue
			}
			w.mu.Lock()
			w.renamed = append(w.renamed, sinkRename{profile: profile, gen: doc.Generation, at: now})
			w.mu.Unlock()
		}
	}
}

// close stops watching and returns what was seen.
func (w *sinkWatch) close() []sinkRename {
	close(w.stop)
	<-w.done
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.renamed
}
