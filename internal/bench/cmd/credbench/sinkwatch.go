package main

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"
)

// commitLog reads the agent's JSON log as it is written and keeps when each
// profile's generation was committed, forwarding every byte to next.
type commitLog struct {
	next interface{ Write([]byte) (int, error) }

	mu      sync.Mutex
	partial []byte
	commits map[string]time.Time // "profile/generation" -> committed at
}

func newCommitLog(next interface{ Write([]byte) (int, error) }) *commitLog {
	return &commitLog{next: next, commits: map[string]time.Time{}}
}

func (c *commitLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := c.partial[:i]
		if bytes.Contains(line, []byte(`"credhelper refresh: committed"`)) {
			var l struct {
				Time       time.Time `json:"time"`
				Profile    string    `json:"profile"`
				Generation uint64    `json:"generation"`
			}
			if json.Unmarshal(line, &l) == nil {
				c.commits[commitKey(l.Profile, l.Generation)] = l.Time
			}
		}
		c.partial = c.partial[i+1:]
	}
	c.partial = append([]byte(nil), c.partial...)
	c.mu.Unlock()
	return c.next.Write(p)
}

func commitKey(profile string, gen uint64) string {
	return profile + "/" + jsonUint(gen)
}

func jsonUint(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (c *commitLog) committed(profile string, gen uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.commits[commitKey(profile, gen)]
	return t, ok
}

type sinkRename struct {
	profile string
	gen     uint64
	at      time.Time
}
