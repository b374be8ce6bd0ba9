package refresh

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/provider"
)

// journal keeps issued pairs on local disk between the issuer's answer and
// the commit. Each process writes its own entry per key and holds a lock
// on the entry's lock file while alive, so a replaying process can tell a
// live owner's entry (locked) from a dead one's (unlocked).
//
// Entries are trusted only if they are ours: the directory passes the
// path-trust rule and belongs to this user (it is created 0700), an entry
// is a regular file of this user's, mode 0600, opened without following a
// link, and it carries an HMAC-SHA256 under a per-user key kept 0600
// beside the entries (journalKeyName). An entry that fails any of this is
// moved aside and logged, never replayed.
type journal struct {
	dir, key, holder string

	refused atomic.Bool // the directory was refused and that was logged
}

// journalEntry is one written journal entry, whose lock this process
// holds.
type journalEntry struct {
	dir  *fsutil.Dir
	name string
	lock *fsutil.Lock
}

// journalRecord is the journal file's content. It holds secrets: the file
// is 0600 in a 0700 directory. MAC authenticates every other field.
type journalRecord struct {
	Key             string           `json:"key"`
	Holder          string           `json:"holder"`
	ClaimedVersion  provider.Version `json:"claimedVersion"`
	SpentGeneration uint64           `json:"spentGeneration"`
	SpentDigest     string           `json:"spentRefreshTokenSHA256"`
	Record          json.RawMessage  `json:"record"`
	MAC             string           `json:"hmacSHA256,omitempty"`
}

// journalKeyName is the file beside the entries that holds the key of
// their MACs.
const journalKeyName = "journal.key"

// Rules for the journal directory, its entries and its key.
var (
	journalDirRule   = fsutil.Rule{What: "journal directory", Mine: true}
	journalEntryRule = fsutil.Rule{What: "journal entry", Private: true, Mine: true, MaxSize: 1 << 20}
	journalKeyRule   = fsutil.Rule{What: "journal key", Private: true, Mine: true, MaxSize: 64}
)

// journalLockWait bounds waiting for our own entry's lock, which a
// replaying process may hold for a moment while it looks.
const journalLockWait = 2 * time.Second

func (j *journal) prefix() string {
	sum := sha256.Sum256([]byte(j.key))
	return hex.EncodeToString(sum[:12])
}

// name is this holder's entry; lockName(name) its lock file.
func (j *journal) name() string {
	return j.prefix() + "." + sanitize(j.holder) + ".json"
}

func lockName(entry string) string {
	return strings.TrimSuffix(entry, ".json") + ".lock"
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// macKey returns the per-user key that authenticates entries in d,
// creating it if create is set and it is missing.
func macKey(d *fsutil.Dir, create bool) ([]byte, error) {
	key, err := d.ReadFile(journalKeyName, journalKeyRule)
	if errors.Is(err, fs.ErrNotExist) && create {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		if err := d.CreateFile(journalKeyName, fresh, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		key, err = d.ReadFile(journalKeyName, journalKeyRule) // ours, or a racing writer's
	}
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, &fsutil.PathError{What: "journal key", Path: d.Join(journalKeyName), Problem: fmt.Sprintf("holds %d bytes, not 32", len(key)), Fix: "remove it; entries sealed with it can then not be replayed", Err: provider.ErrInvalidRecord}
	}
	return key, nil
}

// mac is the HMAC of jr without its MAC. encoding/json is deterministic,
// so the reader computes it over the same bytes.
func (jr journalRecord) mac(key []byte) (string, error) {
	jr.MAC = ""
	b, err := json.Marshal(jr)
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// openJournal parses and authenticates an entry.
func openJournal(key, data []byte) (journalRecord, error) {
	var jr journalRecord
	if err := json.Unmarshal(data, &jr); err != nil {
		return jr, fmt.Errorf("not a journal entry: %w", err)
	}
	want, err := jr.mac(key)
	if err != nil {
		return jr, err
	}
	if !hmac.Equal([]byte(want), []byte(jr.MAC)) {
		return jr, errors.New("its HMAC does not match this user's journal key: it was not written by credhelper as this user")
	}
	return jr, nil
}

// open opens the journal directory, creating it (0700) if create is set.
func (j *journal) open(create bool) (*fsutil.Dir, error) {
	if create {
		return fsutil.MkdirAll(j.dir, journalDirRule)
	}
	return fsutil.OpenDir(j.dir, journalDirRule)
}

// trusted reports a journal directory the trust rule refuses (another
// user's, or writable by others), creating it if missing; other failures
// (a full or read-only disk) are left to write, which logs them.
func (j *journal) trusted() error {
	d, err := j.open(true)
	if err == nil {
		d.Close()
		return nil
	}
	if errors.Is(err, fsutil.ErrUntrusted) || errors.Is(err, fsutil.ErrNotRegular) {
		return fmt.Errorf("journal directory refused, so no refresh token is spent: %w", err)
	}
	return nil
}

// write durably stores p and returns the locked entry.
func (j *journal) write(p *pendingCommit) (*journalEntry, error) {
	rec, err := p.next.Encode()
	if err != nil {
		return nil, err
	}
	d, err := j.open(true)
	if err != nil {
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	key, err := macKey(d, true)
	if err != nil {
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	jr := journalRecord{Key: j.key, Holder: j.holder, ClaimedVersion: p.expected, SpentGeneration: p.spentGen, SpentDigest: p.spentHash, Record: rec}
	if jr.MAC, err = jr.mac(key); err != nil {
		return nil, err
	}
	data, err := json.Marshal(jr)
	if err != nil {
		return nil, err
	}
	// Lock before the entry exists, so no replayer can take it for a dead
	// process's entry.
	name := j.name()
	ctx, cancel := context.WithTimeout(context.Background(), journalLockWait)
	lock, err := d.Lock(ctx, lockName(name), time.Millisecond)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("refresh: journal lock: %w", err)
	}
	if err := d.WriteFile(name, data, 0o600); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("refresh: journal: %w", err)
	}
	ok = true
	return &journalEntry{dir: d, name: name, lock: lock}, nil
}

// remove deletes a committed or superseded entry, then its lock file.
func (en *journalEntry) remove() {
	en.dir.Remove(en.name)
	en.dir.Remove(lockName(en.name))
	en.release()
}

// release unlocks the entry but keeps it for a later replay.
func (en *journalEntry) release() {
	en.lock.Unlock()
	en.dir.Close()
}

// moveAside renames a rejected entry out of the way and logs why, so it is
// never replayed and a person can look at it.
func (pr *protocol) moveAside(en *journalEntry, why error) {
	aside := en.name + ".corrupt"
	if err := en.dir.Rename(en.name, aside); err != nil {
		pr.opts.Logger.Error("credhelper refresh: cannot move a rejected journal entry aside",
			slog.String("key", pr.key), slog.String("journal", en.dir.Join(en.name)), slog.String("error", err.Error()))
	}
	pr.opts.Logger.Warn("credhelper refresh: journal entry rejected and moved aside; it is never replayed",
		slog.String("key", pr.key), slog.String("journal", en.dir.Join(aside)), slog.String("reason", why.Error()))
	en.dir.Remove(lockName(en.name))
	en.release()
}

// replayOnce replays journals before this engine's first refresh.
func (pr *protocol) replayOnce(ctx context.Context) {
	pr.mu.Lock()
	if pr.replayed {
		pr.mu.Unlock()
		return
	}
	pr.mu.Unlock()
	_, failed := pr.replayJournals(ctx)
	pr.mu.Lock()
	pr.replayed = !failed // an entry that could not be handled is tried again on the next refresh
	pr.mu.Unlock()
}

// replayJournals commits, or discards as superseded, journal entries for
// this key left by processes on this host that died between the issuer's
// answer and the commit, and reports how many it found. An entry whose
// owner is alive is locked and left to its owner. The engine calls it at
// start and whenever another instance's claim stands in its way, so a
// survivor recovers a dead neighbour's pair without waiting for its lease.
// failed reports an entry that could not be handled yet.
func (pr *protocol) replayJournals(ctx context.Context) (n int, failed bool) {
	if pr.readOnly {
		return 0, false
	}
	d, err := pr.journal.open(false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false
	}
	if err != nil {
		if !pr.journal.refused.Swap(true) {
			pr.opts.Logger.Error("credhelper refresh: journal directory refused; no journal entry is written or replayed",
				slog.String("key", pr.key), slog.String("error", err.Error()))
		}
		return 0, false // refused for good: nothing of it is trusted
	}
	names, err := d.Names()
	d.Close()
	if err != nil {
		pr.opts.Logger.Warn("credhelper refresh: cannot list the journal; will retry", slog.String("key", pr.key), slog.String("error", err.Error()))
		return 0, true
	}
	prefix, own := pr.journal.prefix()+".", pr.journal.name()
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".json") || name == own {
			continue
		}
		found, err := pr.replay(ctx, name)
		if found {
			n++
		}
		if err != nil {
			failed = true
			if errors.Is(err, errReplayLater) {
				continue
			}
			pr.opts.Logger.Warn("credhelper refresh: journal replay failed; will retry",
				slog.String("key", pr.key), slog.String("journal", name), slog.String("error", err.Error()))
		}
	}
	return n, failed
}

// errReplayLater is an entry left for the next refresh because this
// engine has a pair of its own to commit first.
var errReplayLater = errors.New("refresh: journal entry left for later")

// replay handles the journal entry name; found reports that it belonged to
// a dead process and was acted on.
func (pr *protocol) replay(ctx context.Context, name string) (found bool, err error) {
	d, err := pr.journal.open(false)
	if err != nil {
		return false, err
	}
	lock, ok, err := d.TryLock(lockName(name))
	if err != nil || !ok {
		d.Close()
		return false, err // err: a planted lock file, refused; else its owner is alive
	}
	entry := &journalEntry{dir: d, name: name, lock: lock}
	key, kerr := macKey(d, false)
	data, err := d.ReadFile(name, journalEntryRule)
	if errors.Is(err, fs.ErrNotExist) {
		d.Remove(lockName(name))
		entry.release()
		return false, nil // its owner finished meanwhile
	}
	var jr journalRecord
	if err == nil && errors.Is(kerr, fs.ErrNotExist) {
		err = errors.New("there is no journal key beside it, so credhelper did not write it as this user")
	} else if err == nil {
		err = kerr
	}
	if err == nil {
		jr, err = openJournal(key, data)
	}
	if err == nil && jr.Key != pr.key {
		err = fmt.Errorf("it is for another credential")
	}
	var next *provider.Record
	if err == nil {
		next, err = provider.DecodeRecord(jr.Record)
	}
	if err != nil {
		pr.moveAside(entry, err)
		return true, nil
	}
	_, cur, err := pr.load(ctx)
	if err != nil {
		entry.release()
		return true, err
	}
	if cur.Pair.Generation >= next.Pair.Generation {
		pr.opts.Logger.Info("credhelper refresh: journal entry superseded by a newer generation; discarded",
			slog.String("key", pr.key), slog.Uint64("journal_generation", next.Pair.Generation), slog.Uint64("current_generation", cur.Pair.Generation))
		entry.remove()
		return true, nil
	}
	pr.event(EventJournalReplay, slog.Uint64("generation", next.Pair.Generation), slog.String("from_holder", jr.Holder))
	p := &pendingCommit{spentGen: jr.SpentGeneration, spentHash: jr.SpentDigest, next: next, expected: jr.ClaimedVersion, entry: entry}
	pr.mu.Lock()
	if pr.pending != nil {
		// This engine has its own pair to commit first; try again later.
		pr.mu.Unlock()
		entry.release()
		return false, errReplayLater
	}
	pr.pending = p
	pr.mu.Unlock()
	_, err = pr.commitPending(ctx)
	return true, err
}
