package backendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/provider"
)

func (cfg *Config) defaults(t *testing.T) {
	t.Helper()
	if cfg.New == nil || cfg.Key == nil {
		t.Fatal("backendtest: Config.New and Config.Key are required")
	}
	if cfg.ReadOnly && cfg.Seed == nil {
		t.Fatal("backendtest: Config.Seed is required for a read-only backend")
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 4
	}
	if cfg.Goroutines <= 0 {
		cfg.Goroutines = 16
	}
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = provider.MaxRecordSize
	}
}

// Value returns a valid encoded record whose auth token is tag, with extra
// unknown fields, for tests that need distinct values.
func Value(tag string) []byte {
	r := &provider.Record{Pair: provider.Pair{
		AuthToken:    "auth-" + tag,
		RefreshToken: "refresh-" + tag,
		ValidUntil:   time.Unix(4102444800, 0), // 2100-01-01
		Endpoint:     "cell-test.example.com",
	}}
	r.SetExtra("unknownField", json.RawMessage(`{"kept":["a",1,true]}`))
	b, err := r.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sameJSON compares two values as JSON documents, since a backend may store
// a record's fields natively (Vault) and not keep byte order or spacing.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func mustLoad(t testing.TB, b provider.Backend, key string) provider.Entry {
	t.Helper()
	e, err := b.Load(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	if e.Version == "" {
		t.Fatalf("Load(%q) returned the zero version for a present key", key)
	}
	return e
}

func mustCAS(t testing.TB, b provider.Backend, key string, expected provider.Version, v []byte) provider.Version {
	t.Helper()
	ver, err := b.CompareAndSwap(ctxFor(t), key, expected, v)
	if err != nil {
		t.Fatalf("CompareAndSwap(%q, %q): %v", key, expected, err)
	}
	if ver == "" {
		t.Fatalf("CompareAndSwap(%q) returned the zero version", key)
	}
	return ver
}

func wantValue(t testing.TB, b provider.Backend, key string, want []byte) provider.Entry {
	t.Helper()
	e := mustLoad(t, b, key)
	if !sameJSON(e.Value, want) {
		t.Fatalf("Load(%q) value = %.80q..., want %.80q...", key, e.Value, want)
	}
	return e
}

func run(t *testing.T, cfg Config) {
	if cfg.ReadOnly {
		runReadOnly(t, cfg)
		return
	}
	b := cfg.New(t)

	t.Run("LoadMissing", func(t *testing.T) {
		_, err := b.Load(ctxFor(t), cfg.Key(t))
		if !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("Load of a missing key: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("CreateOnly", func(t *testing.T) {
		key := cfg.Key(t)
		v1 := Value("create-1")
		ver := mustCAS(t, b, key, "", v1)
		e := wantValue(t, b, key, v1)
		if e.Version != ver {
			t.Errorf("Load version = %q, want the version CompareAndSwap returned, %q", e.Version, ver)
		}
		_, err := b.CompareAndSwap(ctxFor(t), key, "", Value("create-2"))
		if !errors.Is(err, provider.ErrConflict) {
			t.Fatalf("create of an existing key: err = %v, want ErrConflict", err)
		}
		wantValue(t, b, key, v1)
	})

	t.Run("SwapAndStaleVersion", func(t *testing.T) {
		key := cfg.Key(t)
		ver1 := mustCAS(t, b, key, "", Value("swap-1"))
		ver2 := mustCAS(t, b, key, ver1, Value("swap-2"))
		if ver2 == ver1 {
			t.Fatalf("version did not change on a swap to a different value: %q", ver2)
		}
		if e := wantValue(t, b, key, Value("swap-2")); e.Version != ver2 {
			t.Errorf("Load version = %q, want %q", e.Version, ver2)
		}
		_, err := b.CompareAndSwap(ctxFor(t), key, ver1, Value("swap-stale"))
		if !errors.Is(err, provider.ErrConflict) {
			t.Fatalf("swap against a stale version: err = %v, want ErrConflict", err)
		}
		wantValue(t, b, key, Value("swap-2"))
		ver3 := mustCAS(t, b, key, ver2, Value("swap-3"))
		if ver3 == ver2 || ver3 == ver1 {
			t.Errorf("version reused: %q after %q, %q", ver3, ver1, ver2)
		}
	})

	t.Run("SwapMissingKey", func(t *testing.T) {
		key := cfg.Key(t)
		other := cfg.Key(t)
		ver := mustCAS(t, b, other, "", Value("other"))
		_, err := b.CompareAndSwap(ctxFor(t), key, ver, Value("x"))
		if !errors.Is(err, provider.ErrConflict) && !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("swap of a missing key with a non-zero version: err = %v, want ErrConflict or ErrNotFound", err)
		}
		if _, err := b.Load(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("key was created by a failed swap: Load err = %v", err)
		}
	})

	t.Run("UnknownFieldsPreserved", func(t *testing.T) {
		key := cfg.Key(t)
		v := []byte(`{"apiKey":"a","refreshToken":"r","validUntil":4102444800,"rotationLambda":{"arn":"x","n":[1,2]},"zzz":"kept"}`)
		ver := mustCAS(t, b, key, "", v)
		e := wantValue(t, b, key, v)
		rec, err := provider.DecodeRecord(e.Value)
		if err != nil {
			t.Fatalf("stored record does not decode: %v", err)
		}
		rec.Pair.AuthToken = "a2"
		v2, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		mustCAS(t, b, key, ver, v2)
		e = wantValue(t, b, key, v2)
		if !bytes.Contains(e.Value, []byte(`"rotationLambda"`)) || !bytes.Contains(e.Value, []byte(`"zzz"`)) {
			t.Fatalf("unknown fields lost: %s", e.Value)
		}
	})

	t.Run("LargeValue", func(t *testing.T) {
		key := cfg.Key(t)
		r := &provider.Record{Pair: provider.Pair{AuthToken: "big", RefreshToken: "r", ValidUntil: time.Unix(4102444800, 0)}}
		r.SetExtra("padding", json.RawMessage(strconv.Quote(strings.Repeat("x", cfg.MaxValue-512))))
		v, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		mustCAS(t, b, key, "", v)
		wantValue(t, b, key, v)
	})

	t.Run("MalformedValue", func(t *testing.T) {
		key := cfg.Key(t)
		good := Value("good")
		ver := mustCAS(t, b, key, "", good)
		for _, bad := range [][]byte{[]byte("not json at all"), []byte(`["an","array"]`), {0xff, 0xfe, 0}} {
			nv, err := b.CompareAndSwap(ctxFor(t), key, ver, bad)
			if err != nil {
				if !errors.Is(err, provider.ErrInvalidRecord) {
					t.Fatalf("malformed value refused with err = %v, want one wrapping ErrInvalidRecord", err)
				}
				wantValue(t, b, key, good)
				continue
			}
			// Stored as opaque bytes: it must read back unchanged, and a
			// good value can replace it.
			e := mustLoad(t, b, key)
			if !bytes.Equal(e.Value, bad) {
				t.Fatalf("malformed value stored but read back changed")
			}
			ver = mustCAS(t, b, key, nv, good)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		key := cfg.Key(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.CompareAndSwap(ctx, key, "", Value("canceled")); err == nil {
			t.Fatal("CompareAndSwap with a canceled context succeeded")
		}
		if _, err := b.Load(ctxFor(t), key); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("a canceled create left a value behind: Load err = %v", err)
		}
	})

	t.Run("ConcurrentGoroutines", func(t *testing.T) {
		key := cfg.Key(t)
		ver := mustCAS(t, b, key, "", Value("race-0"))
		for round := 1; round <= 3; round++ {
			winner, wins := raceGoroutines(t, b, key, ver, fmt.Sprintf("r%d", round), cfg.Goroutines)
			if wins != 1 {
				t.Fatalf("round %d: %d of %d concurrent CompareAndSwaps won, want exactly 1", round, wins, cfg.Goroutines)
			}
			e := wantValue(t, b, key, Value(winner))
			ver = e.Version
		}
	})

	if !cfg.SkipMultiProcess {
		t.Run("ConcurrentProcesses", func(t *testing.T) {
			key := cfg.Key(t)
			ver := mustCAS(t, b, key, "", Value("proc-0"))
			for round := 1; round <= 2; round++ {
				winners := raceProcesses(t, cfg, key, ver, round)
				if len(winners) != 1 {
					t.Fatalf("round %d: %d of %d CompareAndSwaps across %d processes won (%v), want exactly 1",
						round, len(winners), cfg.Processes*cfg.Goroutines, cfg.Processes, winners)
				}
				e := wantValue(t, b, key, Value(winners[0]))
				ver = e.Version
			}
		})
	}
}

// raceGoroutines has n goroutines swap key from ver at once and returns the
// winning tag and the number of wins. Every loser must see ErrConflict.
func raceGoroutines(t testing.TB, b provider.Backend, key string, ver provider.Version, prefix string, n int) (string, int) {
	t.Helper()
	var (
		mu     sync.Mutex
		wins   int
		winner string
		errs   []error
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tag := fmt.Sprintf("%s-g%d", prefix, i)
			<-start
			_, err := b.CompareAndSwap(context.Background(), key, ver, Value(tag))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				winner = tag
			case !errors.Is(err, provider.ErrConflict):
				errs = append(errs, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("a losing CompareAndSwap failed with %v, want ErrConflict", err)
	}
	return winner, wins
}

const (
	envChild      = "CREDHELPER_BACKENDTEST_CHILD"
	envKey        = "CREDHELPER_BACKENDTEST_KEY"
	envVersion    = "CREDHELPER_BACKENDTEST_VERSION"
	envPrefix     = "CREDHELPER_BACKENDTEST_PREFIX"
	envGoroutines = "CREDHELPER_BACKENDTEST_GOROUTINES"
	envStart      = "CREDHELPER_BACKENDTEST_START"
	resultMarker  = "BACKENDTEST-RESULT "
)

// IsChild reports whether this process is a child of the multi-process
// race; a TestMain can use it to skip expensive set-up the child does not
// need.
func IsChild() bool { return os.Getenv(envChild) == "1" }

func raceProcesses(t *testing.T, cfg Config, key string, ver provider.Version, round int) []string {
	t.Helper()
	// The parent test's name: the race runs the top-level function again.
	parent := t.Name()
	parent = parent[:strings.LastIndex(parent, "/")]
	start := time.Now().Add(2 * time.Second).UnixNano()
	type result struct {
		out []byte
		err error
	}
	results := make([]result, cfg.Processes)
	var wg sync.WaitGroup
	for p := 0; p < cfg.Processes; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cmd := testexec.Command(parent, 2*time.Minute)
			cmd.Env = append(os.Environ(),
				envChild+"=1",
				envKey+"="+key,
				envVersion+"="+string(ver),
				fmt.Sprintf("%s=r%d-p%d", envPrefix, round, p),
				fmt.Sprintf("%s=%d", envGoroutines, cfg.Goroutines),
				fmt.Sprintf("%s=%d", envStart, start),
			)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%v; stderr: %s; stdout: %s", err, stderr.Bytes(), out)
			}
			results[p] = result{out, err}
		}(p)
	}
	wg.Wait()
	var winners []string
	for p, r := range results {
		if r.err != nil {
			t.Fatalf("child process %d: %v", p, r.err)
		}
		found := false
		for _, line := range strings.Split(string(r.out), "\n") {
			rest, ok := strings.CutPrefix(line, resultMarker)
			if !ok {
				continue
			}
			found = true
			for _, f := range strings.Fields(rest) {
				if w, ok := strings.CutPrefix(f, "win="); ok {
					winners = append(winners, w)
				}
				if e, ok := strings.CutPrefix(f, "error="); ok {
					t.Errorf("child process %d: a losing CompareAndSwap failed with %s, want ErrConflict", p, e)
				}
			}
		}
		if !found {
			t.Fatalf("child process %d printed no result; stdout: %s", p, r.out)
		}
	}
	return winners
}

// runChild performs a child's part of the multi-process race and reports
// whether this process is such a child.
func runChild(t *testing.T, cfg Config) bool {
	if !IsChild() {
		return false
	}
	b := cfg.New(t)
	n, _ := strconv.Atoi(os.Getenv(envGoroutines))
	startNs, _ := strconv.ParseInt(os.Getenv(envStart), 10, 64)
	// Build the backend first, then start together with the other
	// processes so their swaps overlap.
	time.Sleep(time.Until(time.Unix(0, startNs)))
	var (
		mu    sync.Mutex
		parts []string
		wg    sync.WaitGroup
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tag := fmt.Sprintf("%s-g%d", os.Getenv(envPrefix), i)
			_, err := b.CompareAndSwap(context.Background(), os.Getenv(envKey), provider.Version(os.Getenv(envVersion)), Value(tag))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				parts = append(parts, "win="+tag)
			case !errors.Is(err, provider.ErrConflict):
				parts = append(parts, "error="+strconv.Quote(err.Error()))
			}
		}(i)
	}
	wg.Wait()
	fmt.Printf("\n%s%s\n", resultMarker, strings.Join(append(parts, "done"), " "))
	return true
}

func runReadOnly(t *testing.T, cfg Config) {
	b := cfg.New(t)
	t.Run("LoadMissing", func(t *testing.T) {
		if _, err := b.Load(ctxFor(t), cfg.Key(t)); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("Load of a missing key: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("LoadSeeded", func(t *testing.T) {
		key := cfg.Key(t)
		v := Value("seeded")
		cfg.Seed(t, key, v)
		e := wantValue(t, b, key, v)
		if e2 := mustLoad(t, b, key); e2.Version != e.Version {
			t.Errorf("version changed between two loads of an unchanged value: %q, %q", e.Version, e2.Version)
		}
	})
	t.Run("WritesRefused", func(t *testing.T) {
		key := cfg.Key(t)
		v := Value("seeded")
		cfg.Seed(t, key, v)
		e := mustLoad(t, b, key)
		for _, expected := range []provider.Version{"", e.Version} {
			if _, err := b.CompareAndSwap(ctxFor(t), key, expected, Value("write")); !errors.Is(err, provider.ErrReadOnly) {
				t.Fatalf("CompareAndSwap(expected %q) on a read-only backend: err = %v, want ErrReadOnly", expected, err)
			}
		}
		wantValue(t, b, key, v)
		if ro, ok := b.(provider.ReadOnlyBackend); !ok || !ro.ReadOnly() {
			t.Errorf("read-only backend does not report ReadOnly() == true")
		}
	})
}
