package backendtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/credhelper/credhelper/provider"
)

// memBackend is an in-memory store whose bug, if any, breaks the contract
// in one way.
type memBackend struct {
	bug string

	mu           sync.Mutex // guards everything below
	cur          map[string]provider.Entry
	past         map[string][]provider.Entry // replaced entries, oldest first
	seq          int
	loads, swaps int
}

var _ provider.Backend = (*memBackend)(nil)

func newMem(bug string) *memBackend {
	return &memBackend{bug: bug, cur: map[string]provider.Entry{}, past: map[string][]provider.Entry{}}
}

func (m *memBackend) Load(ctx context.Context, key string) (provider.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	if old := m.past[key]; m.bug == "stale read" && m.loads%3 == 0 && len(old) > 0 {
		return old[len(old)-1], nil
	}
	e, ok := m.cur[key]
	if !ok {
		return provider.Entry{}, fmt.Errorf("mem: %s: %w", key, provider.ErrNotFound)
	}
	return e, nil
}

func (m *memBackend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.swaps++
	if m.bug == "unknown outcomes" && m.swaps%7 == 1 {
		return "", provider.Transient(errors.New("mem: request lost before it arrived"))
	}
	e, ok := m.cur[key]
	match := (expected == "" && !ok) || (ok && e.Version == expected)
	if m.bug == "stale swap" && !match && expected != "" {
		for _, old := range m.past[key] {
			match = match || old.Version == expected
		}
	}
	if !match {
		if !ok {
			return "", fmt.Errorf("mem: %s: %w", key, provider.ErrNotFound)
		}
		return "", fmt.Errorf("mem: %s: %w", key, provider.ErrConflict)
	}
	m.seq++
	ver := provider.Version(fmt.Sprintf("v%d", m.seq))
	if m.bug == "reused version" {
		ver = provider.Version(fmt.Sprintf("v%d", m.seq%3))
	}
	if m.bug == "lost write" && m.swaps%4 == 0 {
		return ver, nil
	}
	if ok {
		m.past[key] = append(m.past[key], e)
	}
	m.cur[key] = provider.Entry{Value: append([]byte(nil), value...), Version: ver}
	switch {
	case m.bug == "conflict after write" && m.swaps%4 == 0:
		return "", fmt.Errorf("mem: %s: %w", key, provider.ErrConflict)
	case m.bug == "unknown outcomes" && m.swaps%7 == 3:
		return "", provider.Transient(errors.New("mem: reply lost after the write"))
	}
	return ver, nil
}

func memConfig(m *memBackend) Config {
	n := 0
	return Config{
		New: func(testing.TB) provider.Backend { return m },
		Key: func(testing.TB) string {
			n++
			return fmt.Sprintf("key-%d", n)
		},
		SkipMultiProcess: true,
	}
}

// TestLinearizabilityMemory: a correct store passes, and so does one whose
// swaps sometimes fail with an unknown outcome, before or after writing.
func TestLinearizabilityMemory(t *testing.T) {
	for _, bug := range []string{"", "unknown outcomes"} {
		t.Run(strings.ReplaceAll(bug+" ", " ", "_"), func(t *testing.T) {
			RunLinearizability(t, memConfig(newMem(bug)), func(o *LinearizabilityOptions) {
				o.Processes, o.Goroutines, o.Ops = 3, 4, 60
			})
		})
	}
}

// TestLinearizabilityDetectsBrokenBackends proves the check can fail: each
// broken store must be reported, with a visualization when porcupine
// refused the history.
func TestLinearizabilityDetectsBrokenBackends(t *testing.T) {
	artifacts := t.TempDir()
	t.Setenv("TEST_ARTIFACTS", artifacts)
	for _, bug := range []string{"stale swap", "stale read", "lost write", "conflict after write", "reused version"} {
		t.Run(strings.ReplaceAll(bug, " ", "_"), func(t *testing.T) {
			o := LinearizabilityOptions{Processes: 3, Goroutines: 4, Ops: 60}
			o.defaults()
			rep, err := checkLinearizability(t, memConfig(newMem(bug)), o)
			if !errors.Is(err, errNotLinearizable) {
				t.Fatalf("a store with a %q bug passed: err = %v; %s", bug, err, rep)
			}
			if rep.htmlPath == "" {
				if bug != "reused version" {
					t.Errorf("no visualization written; err = %v", err)
				}
			} else if _, serr := os.Stat(rep.htmlPath); serr != nil || !strings.Contains(err.Error(), rep.htmlPath) {
				t.Errorf("visualization %q: stat err = %v; named in the error: %v", rep.htmlPath, serr, strings.Contains(err.Error(), rep.htmlPath))
			}
			if !strings.HasPrefix(rep.historyPath, artifacts) {
				t.Errorf("history written to %q, want it under $TEST_ARTIFACTS %q", rep.historyPath, artifacts)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

// TestRegisterModel checks the model on small hand-written histories.
func TestRegisterModel(t *testing.T) {
	load := func(g int, call, ret int64, tag, ver string) linOp {
		if tag == "" {
			return linOp{G: g, Kind: opLoad, Call: call, Return: ret, Result: resNotFound}
		}
		return linOp{G: g, Kind: opLoad, Call: call, Return: ret, Result: resOK, OutTag: tag, Version: ver}
	}
	cas := func(g int, call, ret int64, expected, tag, result, ver string) linOp {
		return linOp{G: g, Kind: opCAS, Call: call, Return: ret, Expected: expected, Tag: tag, Result: result, Version: ver}
	}
	tests := []struct {
		name string
		ops  []linOp
		ok   bool
	}{
		{"sequential", []linOp{
			load(0, 0, 1, "", ""),
			cas(0, 2, 3, "", "a", resOK, "v1"),
			load(0, 4, 5, "a", "v1"),
			cas(0, 6, 7, "v1", "b", resOK, "v2"),
			cas(0, 8, 9, "v1", "c", resConflict, ""),
			load(0, 10, 11, "b", "v2"),
		}, true},
		{"read of an overwritten value", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 3, "v1", "b", resOK, "v2"),
			load(1, 4, 5, "a", "v1"),
		}, false},
		{"read during the overwrite", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 6, "v1", "b", resOK, "v2"),
			load(1, 3, 4, "a", "v1"),
			load(1, 5, 7, "b", "v2"),
		}, true},
		{"two concurrent winners", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 5, "v1", "b", resOK, "v2"),
			cas(1, 3, 4, "v1", "c", resOK, "v3"),
		}, false},
		{"version differs from the one returned", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			load(1, 2, 3, "a", "v9"),
		}, false},
		{"conflict with nothing in the way", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 3, "v1", "b", resConflict, ""),
		}, false},
		{"not found while present", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 3, "v7", "b", resNotFound, ""),
		}, false},
		{"not found while absent", []linOp{
			cas(0, 0, 1, "v7", "b", resNotFound, ""),
			load(0, 2, 3, "", ""),
		}, true},
		{"undecodable value", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			load(1, 2, 3, undecodable, "v1"),
		}, false},
		{"unknown outcome that happened", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			{G: 1, Kind: opCAS, Call: 2, Return: 3, Expected: "v1", Tag: "b", Result: resError, Err: "timeout"},
			load(0, 4, 5, "b", "v2"),
			cas(0, 6, 7, "v2", "c", resOK, "v3"),
			cas(0, 8, 9, "v2", "d", resConflict, ""),
		}, true},
		{"unknown outcome that did not happen", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			{G: 1, Kind: opCAS, Call: 2, Return: 3, Expected: "v1", Tag: "b", Result: resError, Err: "timeout"},
			cas(0, 4, 5, "v1", "c", resOK, "v2"),
			load(0, 6, 7, "c", "v2"),
		}, true},
		{"unknown outcome seen before it began", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			load(0, 2, 3, "b", "v2"),
			{G: 1, Kind: opCAS, Call: 4, Return: 5, Expected: "v1", Tag: "b", Result: resError, Err: "timeout"},
		}, false},
		{"failed load ignored", []linOp{
			{G: 0, Kind: opLoad, Call: 0, Return: 1, Result: resError, Err: "unavailable"},
			load(0, 2, 3, "", ""),
		}, true},
		{"reused version", []linOp{
			cas(0, 0, 1, "", "a", resOK, "v1"),
			cas(0, 2, 3, "v1", "b", resOK, "v1"),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := checkHistory(tt.ops, 0)
			if ok := err == nil; ok != tt.ok {
				t.Fatalf("linearizable = %v (%s, err %v), want %v", ok, res, err, tt.ok)
			}
			if !tt.ok && !errors.Is(err, errNotLinearizable) {
				t.Errorf("err = %v, want errNotLinearizable", err)
			}
			if res != "" && (res == porcupine.Ok) != tt.ok {
				t.Errorf("porcupine said %s", res)
			}
		})
	}
}

func TestTagOf(t *testing.T) {
	if got := tagOf(Value("p1-g2-o3")); got != "p1-g2-o3" {
		t.Errorf("tagOf(Value(p1-g2-o3)) = %q", got)
	}
	for _, v := range [][]byte{nil, []byte("{}"), []byte(`{"apiKey":"x","refreshToken":"y","validUntil":4102444800}`)} {
		if got := tagOf(v); got != undecodable {
			t.Errorf("tagOf(%s) = %q, want %q", v, got, undecodable)
		}
	}
}

func TestParseHistory(t *testing.T) {
	out := "noise\n" + historyMarker + `{"p":1,"g":2,"op":"load","call":5,"return":6,"result":"notfound"}` + "\nPASS\n"
	if _, err := parseHistory([]byte(out)); err == nil {
		t.Error("a history without its end marker was accepted")
	}
	ops, err := parseHistory([]byte(out + historyMarker + "done\n"))
	if err != nil || len(ops) != 1 || ops[0].Proc != 1 || ops[0].G != 2 || ops[0].Result != resNotFound {
		t.Errorf("parseHistory = %+v, %v", ops, err)
	}
	if _, err := parseHistory([]byte(historyMarker + "{bad\n" + historyMarker + "done\n")); err == nil {
		t.Error("an unreadable line was accepted")
	}
}

// The artifact directory name must be a safe path component.
func TestArtifactDir(t *testing.T) {
	base := t.TempDir()
	t.Setenv("TEST_ARTIFACTS", base)
	dir, err := artifactDir(t)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != base {
		t.Errorf("artifactDir = %q, want a directory directly under %q", dir, base)
	}
}

// racyFile is a file store whose CompareAndSwap compares and writes
// without a lock: correct in one goroutine, broken across processes.
type racyFile struct{}

func (racyFile) Load(ctx context.Context, key string) (provider.Entry, error) {
	data, err := os.ReadFile(key)
	if errors.Is(err, os.ErrNotExist) {
		return provider.Entry{}, fmt.Errorf("racy: %w", provider.ErrNotFound)
	}
	if err != nil {
		return provider.Entry{}, err
	}
	return provider.Entry{Value: data, Version: provider.Version(fmt.Sprintf("%x", sha256.Sum256(data)))}, nil
}

func (r racyFile) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	e, err := r.Load(ctx, key)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		if expected != "" {
			return "", fmt.Errorf("racy: %w", provider.ErrConflict)
		}
	case err != nil:
		return "", err
	case e.Version != expected:
		return "", fmt.Errorf("racy: %w", provider.ErrConflict)
	}
	time.Sleep(time.Millisecond) // widen the window between compare and write
	f, err := os.CreateTemp(filepath.Dir(key), "tmp-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), key)
	}
	if err != nil {
		return "", err
	}
	return provider.Version(fmt.Sprintf("%x", sha256.Sum256(value))), nil
}

// TestLinearizabilityDetectsRacyProcesses proves the multi-process path
// can fail: child processes swapping a file without a lock lose updates.
func TestLinearizabilityDetectsRacyProcesses(t *testing.T) {
	cfg := Config{
		New: func(testing.TB) provider.Backend { return racyFile{} },
		Key: func(testing.TB) string { return filepath.Join(t.TempDir(), "cred.json") },
	}
	if runLinearizabilityChild(t, cfg) {
		return
	}
	t.Setenv("TEST_ARTIFACTS", t.TempDir())
	o := LinearizabilityOptions{Processes: 3, Goroutines: 2, Ops: 40}
	o.defaults()
	rep, err := checkLinearizability(t, cfg, o)
	if !errors.Is(err, errNotLinearizable) {
		t.Fatalf("unlocked swaps from %d processes passed: err = %v; %s", o.Processes, err, rep)
	}
	t.Logf("refused as expected: %v", err)
}
