//go:build unix

package refresh

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

// plantEntry writes a genuine journal entry of a dead holder whose claim
// is the record's current version, so that replaying it would commit its
// pair at once, and returns the entry's path and the planted pair.
func plantEntry(t *testing.T, f *fixture) (string, provider.Pair) {
	t.Helper()
	f.expire(f.first)
	current := f.be.put(testKey, &provider.Record{Pair: f.first})
	planted := f.iss.mint()
	planted.Generation = 50
	j := &journal{dir: f.dir, key: testKey, holder: "dead"}
	en, err := j.write(&pendingCommit{spentGen: f.first.Generation, spentHash: tokenDigest(f.first.RefreshToken), next: &provider.Record{Pair: planted}, expected: current})
	if err != nil {
		t.Fatal(err)
	}
	en.release()
	return filepath.Join(f.dir, j.name()), planted
}

// TestJournalEntriesMustBeOurs: an entry that is not a regular 0600 file
// of this user's with a valid HMAC is moved aside and logged, never
// replayed; the engine refreshes with the issuer instead.
func TestJournalEntriesMustBeOurs(t *testing.T) {
	tests := []struct {
		name   string
		spoil  func(t *testing.T, path string)
		reason string
	}{
		{"tampered", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["spentGeneration"] = 7
			b, _ = json.Marshal(m)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "HMAC does not match"},
		{"without HMAC", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			var m map[string]any
			json.Unmarshal(b, &m)
			delete(m, "hmacSHA256")
			b, _ = json.Marshal(m)
			os.WriteFile(path, b, 0o600)
		}, "HMAC does not match"},
		{"readable by others", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600"},
		{"a link", func(t *testing.T, path string) {
			elsewhere := filepath.Join(t.TempDir(), "entry.json")
			if err := os.Rename(path, elsewhere); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"a FIFO", func(t *testing.T, path string) {
			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "named pipe"},
		{"oversized", func(t *testing.T, path string) {
			if err := os.Truncate(path, 2<<20); err != nil {
				t.Fatal(err)
			}
		}, "limit"},
		{"keyless", func(t *testing.T, path string) {
			if err := os.Remove(filepath.Join(filepath.Dir(path), journalKeyName)); err != nil {
				t.Fatal(err)
			}
		}, "no journal key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			path, planted := plantEntry(t, f)
			tt.spoil(t, path)
			var log testexec.Buffer
			e := f.engine("a", func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
			p := mustGet(t, e)
			if p.AuthToken == planted.AuthToken || f.be.record(testKey).Pair.AuthToken == planted.AuthToken {
				t.Fatal("the spoiled entry's pair was replayed")
			}
			if got := f.be.record(testKey).Pair.Generation; got != 1 {
				t.Errorf("stored generation %d, want 1 (one refresh with the issuer)", got)
			}
			if calls, _ := f.iss.stats(); calls != 1 {
				t.Errorf("issuer calls = %d, want 1", calls)
			}
			if _, err := os.Lstat(path + ".corrupt"); err != nil {
				t.Errorf("the entry was not moved aside: %v", err)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Error("the spoiled entry is still in place")
			}
			out := log.String()
			if !strings.Contains(out, "rejected and moved aside") || !strings.Contains(out, tt.reason) {
				t.Errorf("log does not report the rejection with %q:\n%s", tt.reason, out)
			}
			if strings.Contains(out, planted.AuthToken) || strings.Contains(out, planted.RefreshToken) {
				t.Error("the log carries the planted tokens")
			}
		})
	}
}

// TestJournalDirectoryMustBeOurs: a journal directory others can write,
// or a link to one, is refused with the command that fixes it, and
// nothing in it is replayed.
func TestJournalDirectoryMustBeOurs(t *testing.T) {
	for _, viaLink := range []bool{false, true} {
		t.Run(map[bool]string{false: "directory", true: "link"}[viaLink], func(t *testing.T) {
			f := newFixture(t)
			path, planted := plantEntry(t, f)
			if err := os.Chmod(f.dir, 0o777); err != nil {
				t.Fatal(err)
			}
			dir := f.dir
			if viaLink {
				dir = filepath.Join(t.TempDir(), "journal")
				if err := os.Symlink(f.dir, dir); err != nil {
					t.Fatal(err)
				}
			}
			var log testexec.Buffer
			e := f.engine("a", func(o *Options) {
				o.JournalDir = dir
				o.Logger = slog.New(slog.NewTextHandler(&log, nil))
			})
			// The pair is due: refused before anything is spent.
			_, err := e.Credential(ctx(t))
			if err == nil || !strings.Contains(err.Error(), "journal directory refused") || !strings.Contains(err.Error(), "chmod go-w "+f.dir) {
				t.Errorf("Credential: err %v, want the journal directory refused with the chmod that fixes it", err)
			}
			if calls, _ := f.iss.stats(); calls != 0 {
				t.Errorf("issuer calls = %d without a trusted journal, want 0", calls)
			}
			if f.be.record(testKey).Pair.AuthToken == planted.AuthToken {
				t.Fatal("an entry in a directory others can write was replayed")
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("the refused directory's entry was touched: %v", err)
			}
			out := log.String()
			for _, want := range []string{"journal directory refused", "mode 0777", "chmod go-w " + f.dir} {
				if !strings.Contains(out, want) {
					t.Errorf("log does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestJournalFilesArePrivate: entries, their lock files and the key are
// 0600, the directory 0700, and nothing but the key is left after a
// commit.
func TestJournalFilesArePrivate(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(f.dir, "new", "journal")
	j := &journal{dir: dir, key: testKey, holder: "me"}
	next := f.iss.mint()
	en, err := j.write(&pendingCommit{next: &provider.Record{Pair: next}, expected: "v"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, j.name()), filepath.Join(dir, lockName(j.name())), filepath.Join(dir, journalKeyName)} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v %v, want a regular file with mode 0600", p, fi, err)
		}
	}
	for _, p := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", p, fi, err)
		}
	}
	en.remove()
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != journalKeyName {
		t.Errorf("left after remove: %v, want only the key", left)
	}
}

// TestJournalReplayRetried: a dead holder's entry that could not be
// replayed at start (the store failed to load) is replayed by the next
// refresh, not left until a neighbour's lease stands in the way: its pair
// is committed and served, and the issuer is not called.
func TestJournalReplayRetried(t *testing.T) {
	f := newFixture(t)
	_, planted := plantEntry(t, f)
	var mu sync.Mutex
	failures := 2 // the replay's load and the refresh's own
	f.be.loadErr = func() error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return provider.Transient(errors.New("store unavailable"))
		}
		return nil
	}
	e := f.engine("a")
	if _, err := e.Credential(ctx(t)); err == nil {
		t.Fatal("Credential succeeded with the store down")
	}
	var p provider.Pair
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if p, err = e.Credential(ctx(t)); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.AuthToken != planted.AuthToken || f.be.record(testKey).Pair.AuthToken != planted.AuthToken {
		t.Errorf("served generation %d, stored %d: want the journaled pair (generation %d) replayed", p.Generation, f.be.record(testKey).Pair.Generation, planted.Generation)
	}
	if calls, _ := f.iss.stats(); calls != 0 {
		t.Errorf("issuer calls = %d, want 0: the journaled pair was the refresh", calls)
	}
}

// TestCommitAnswerLost: a commit that landed but whose answer was lost is
// recognised as this engine's own when it tries again (the model's flight
// 11.1), not reported orphaned.
func TestCommitAnswerLost(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	lost := false
	f.be.ackLost = func(v []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		rec, err := provider.DecodeRecord(v)
		if lost || err != nil || rec.Pair.Generation != 1 || rec.Lease != nil {
			return false
		}
		lost = true // the first commit of generation 1
		return true
	}
	e := f.engine("a")
	f.expire(f.first)
	p := mustGet(t, e)
	deadline := time.Now().Add(5 * time.Second)
	for f.metrics.get(EventCommitted) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !lost {
		t.Fatal("no commit answer was lost: the test did not run its case")
	}
	if got := f.be.record(testKey).Pair; !SameLineage(got, p) || got.Generation != 1 {
		t.Errorf("stored generation %d, served %d: want generation 1 served and stored", got.Generation, p.Generation)
	}
	if n := f.metrics.get(EventOrphaned); n != 0 {
		t.Errorf("orphaned events = %d, want 0: the pair that landed is this engine's own", n)
	}
	if n := f.metrics.get(EventCommitted); n != 1 {
		t.Errorf("committed events = %d, want 1", n)
	}
	if calls, _ := f.iss.stats(); calls != 1 {
		t.Errorf("issuer calls = %d, want 1", calls)
	}
}
