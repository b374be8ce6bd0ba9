package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/provider"
)

// journal keeps issued pairs on local disk between the issuer's answer and
// the commit. Each process writes its own file per key and holds an flock
// on it while alive, so a replaying process can tell a live owner's entry
// (locked) from a dead one's (unlocked).
type journal struct {
	dir, key, holder string
}

// journalEntry is one written journal file, locked by this process.
type journalEntry struct {
	path string
	f    *os.File
}

// journalRecord is the journal file's content. It holds secrets: the file
// is 0600 in a 0700 directory.
type journalRecord struct {
	Key             string           `json:"key"`
	Holder          string           `json:"holder"`
	ClaimedVersion  provider.Version `json:"claimedVersion"`
	SpentGeneration uint64           `json:"spentGeneration"`
	SpentDigest     string           `json:"spentRefreshTokenSHA256"`
	Record          json.RawMessage  `json:"record"`
}

func (j *journal) prefix() string {
	sum := sha256.Sum256([]byte(j.key))
	return hex.EncodeToString(sum[:12])
}

func (j *journal) path() string {
	return filepath.Join(j.dir, j.prefix()+"."+sanitize(j.holder)+".json")
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// write durably stores p and returns the locked entry.
func (j *journal) write(p *pendingCommit) (*journalEntry, error) {
	rec, err := p.next.Encode()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(journalRecord{Key: j.key, Holder: j.holder, ClaimedVersion: p.expected, SpentGeneration: p.spentGen, SpentDigest: p.spentHash, Record: rec})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, fmt.Errorf("refresh: journal directory: %w", err)
	}
	tmp, err := os.CreateTemp(j.dir, ".journal-*")
	if err != nil {
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Lock before the file has its final name, so no replayer can take it
	// for a dead process's entry.
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("refresh: journal lock: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return nil, fmt.Errorf("refresh: journal write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("refresh: journal fsync: %w", err)
	}
	dst := j.path()
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return nil, fmt.Errorf("refresh: journal rename: %w", err)
	}
	if err := file.SyncDir(j.dir); err != nil {
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	ok = true
	return &journalEntry{path: dst, f: tmp}, nil
}

// remove deletes a committed or superseded entry.
func (en *journalEntry) remove() {
	os.Remove(en.path)
	en.f.Close()
}

// release unlocks the entry but keeps it for a later replay.
func (en *journalEntry) release() { en.f.Close() }

// replayOnce replays journals before this engine's first refresh.
func (e *Engine) replayOnce(ctx context.Context) {
	e.mu.Lock()
	if e.replayed {
		e.mu.Unlock()
		return
	}
	e.replayed = true
	e.mu.Unlock()
	e.replayJournals(ctx)
}

// replayJournals commits, or discards as superseded, journal entries for
// this key left by processes on this host that died between the issuer's
// answer and the commit, and reports how many it found. An entry whose
// owner is alive is locked and left to its owner. The engine calls it at
// start and whenever another instance's claim stands in its way, so a
// survivor recovers a dead neighbour's pair without waiting for its lease.
func (e *Engine) replayJournals(ctx context.Context) int {
	if e.readOnly {
		return 0
	}
	paths, _ := filepath.Glob(filepath.Join(e.journal.dir, e.journal.prefix()+".*.json"))
	n := 0
	for _, p := range paths {
		if p == e.journal.path() {
			continue
		}
		found, err := e.replay(ctx, p)
		if found {
			n++
		}
		if err != nil {
			e.opts.Logger.Warn("credhelper refresh: journal replay failed; will retry",
				slog.String("key", e.key), slog.String("journal", p), slog.String("error", err.Error()))
		}
	}
	return n
}

// replay handles one journal file; found reports that it belonged to a
// dead process and was acted on.
func (e *Engine) replay(ctx context.Context, path string) (found bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, nil // gone meanwhile: its owner finished
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return false, nil // its owner is alive and will commit it
	}
	if _, err := os.Stat(path); err != nil {
		f.Close()
		return false, nil // removed between our open and our lock
	}
	entry := &journalEntry{path: path, f: f}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		entry.release()
		return true, err
	}
	var jr journalRecord
	if err := json.Unmarshal(data, &jr); err != nil || jr.Key != e.key {
		os.Rename(path, path+".corrupt")
		entry.release()
		return true, fmt.Errorf("refresh: corrupt journal entry (moved aside as %s.corrupt): %w", filepath.Base(path), errors.Join(err, provider.ErrInvalidRecord))
	}
	next, err := provider.DecodeRecord(jr.Record)
	if err != nil {
		os.Rename(path, path+".corrupt")
		entry.release()
		return true, fmt.Errorf("refresh: corrupt journal entry (moved aside as %s.corrupt): %w", filepath.Base(path), err)
	}
	_, cur, err := e.load(ctx)
	if err != nil {
		entry.release()
		return true, err
	}
	if cur.Pair.Generation >= next.Pair.Generation {
		e.opts.Logger.Info("credhelper refresh: journal entry superseded by a newer generation; discarded",
			slog.String("key", e.key), slog.Uint64("journal_generation", next.Pair.Generation), slog.Uint64("current_generation", cur.Pair.Generation))
		entry.remove()
		return true, nil
	}
	e.event(EventJournalReplay, slog.Uint64("generation", next.Pair.Generation), slog.String("from_holder", jr.Holder))
	p := &pendingCommit{spentGen: jr.SpentGeneration, spentHash: jr.SpentDigest, next: next, expected: jr.ClaimedVersion, entry: entry}
	e.mu.Lock()
	if e.pending != nil {
		// This engine has its own pair to commit first; try again later.
		e.mu.Unlock()
		entry.release()
		return false, nil
	}
	e.pending = p
	e.mu.Unlock()
	_, err = e.commitPending(ctx)
	return true, err
}
