package plugins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/credhelper/credhelper/provider"
)

// evilScript is the unpinned binary a swapper exchanges with the pinned
// one: each run appends a line to the marker file.
const evilScript = "#!/bin/sh\necho ran >> %MARKER%\nexit 1\n"

// swapSetup lays out, in a directory only the user can write, a copy of
// the pinned test plugin and the evil script, and returns their paths, the
// pinned checksum and the marker the script writes.
func swapSetup(t *testing.T) (plugin, evil, sum, marker string) {
	t.Helper()
	dir := t.TempDir()
	src, sum := binary(t, "testplugin")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	plugin, evil, marker = filepath.Join(dir, "plugin"), filepath.Join(dir, "evil"), filepath.Join(dir, "marker")
	if err := os.WriteFile(plugin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evil, []byte(strings.ReplaceAll(evilScript, "%MARKER%", marker)), 0o755); err != nil {
		t.Fatal(err)
	}
	return plugin, evil, sum, marker
}

// swapper exchanges a and b with renameat2(RENAME_EXCHANGE) in a loop
// until the returned stop is called (or the test ends); stop reports
// how many exchanges it made.
func swapper(t *testing.T, a, b string) (stop func() int64) {
	quit := make(chan struct{})
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for {
			select {
			case <-quit:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2: %v", err)
				return
			}
			n.Add(1)
			// A pause of up to 0.5ms lets starts see either file under
			// the name, while many exchanges still fall between a
			// start's hash and its exec.
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
	}()
	var once sync.Once
	stop = func() int64 {
		once.Do(func() { close(quit) })
		wg.Wait()
		return n.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// refusedSwap reports the two refusals a swap may cause: the hash of the
// open binary is not the pinned one, or the file was exchanged between its
// check and its open.
func refusedSwap(err error) bool {
	return errors.Is(err, ErrChecksumMismatch) || (errors.Is(err, ErrUnsafeBinary) && strings.Contains(err.Error(), "was replaced while it was being opened"))
}

func markerRuns(marker string) int {
	b, _ := os.ReadFile(marker)
	return bytes.Count(b, []byte("ran"))
}

// TestSwapRaceRunsOnlyThePinnedBinary starts the pinned plugin 200 times
// while a swapper exchanges it with an unpinned script in a loop. Every
// start either runs the pinned bytes or is refused with a checksum
// mismatch; the script never runs. A control loop that hashes the path
// and then executes the path, as the host once did, shows that the race
// is real in the same setup.
func TestSwapRaceRunsOnlyThePinnedBinary(t *testing.T) {
	plugin, evil, sum, marker := swapSetup(t)

	// Control: hash by path, then exec by path.
	stop := swapper(t, plugin, evil)
	want, _ := hex.DecodeString(sum)
	for range 200 {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		b, err := os.ReadFile(plugin)
		if err != nil {
			continue
		}
		if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
			continue
		}
		exec.Command(plugin, "-h").Run()
	}
	stop()
	control := markerRuns(marker)
	t.Logf("control (hash the path, then exec the path): the unpinned script ran %d times in 200 starts", control)
	if control == 0 {
		t.Fatal("the control never ran the unpinned script: this setup cannot tell a safe exec from an unsafe one")
	}
	os.Remove(marker)

	stop = swapper(t, plugin, evil)
	started, refused := 0, 0
	const iterations = 200
	for i := range iterations {
		// Random start times keep the two loops from falling into step.
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		p, err := Open(Spec{Name: "swapped", Path: plugin, SHA256: sum})
		if err != nil {
			if !refusedSwap(err) {
				t.Fatalf("iteration %d: Open: %v, want a checksum mismatch, a refused replacement or success", i, err)
			}
			refused++
			continue
		}
		ctx := ctxFor(t, 20*time.Second)
		var b provider.Backend
		if b, err = p.Backend(ctx); err == nil {
			_, err = b.Load(ctx, "pid")
		}
		p.Close()
		switch {
		case err == nil:
			started++
		case refusedSwap(err):
			refused++
		default:
			t.Fatalf("iteration %d: Load: %v", i, err)
		}
	}
	swaps := stop()
	if n := markerRuns(marker); n != 0 {
		t.Fatalf("the unpinned binary ran %d times in %d starts", n, iterations)
	}
	t.Logf("%d starts ran the pinned plugin, %d were refused (checksum mismatch or replaced while opened), %d swaps, 0 runs of the unpinned binary", started, refused, swaps)
	if started == 0 || swaps < iterations {
		t.Fatalf("the race was not exercised: %d starts, %d swaps", started, swaps)
	}
}

// TestBinaryPathRule: a plugin binary in a directory others can write,
// reached through a link in one, or that is not a regular file, is
// refused before anything runs.
func TestBinaryPathRule(t *testing.T) {
	plugin, _, sum, _ := swapSetup(t)
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	inOpen := filepath.Join(open, "plugin")
	b, _ := os.ReadFile(plugin)
	os.WriteFile(inOpen, b, 0o755)
	linked := filepath.Join(t.TempDir(), "link")
	os.Symlink(inOpen, linked)
	fifo := filepath.Join(t.TempDir(), "fifo")
	syscall.Mkfifo(fifo, 0o700)
	for _, tt := range []struct{ name, path, says string }{
		{"directory others can write", inOpen, "chmod go-w " + open},
		{"link into such a directory", linked, "chmod go-w " + open},
		{"fifo", fifo, "named pipe"},
		{"device", "/dev/zero", "character device"},
		{"directory", open, "a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Open(Spec{Name: "x", Path: tt.path, SHA256: sum})
			if !errors.Is(err, ErrUnsafeBinary) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), `plugin "x"`) {
				t.Errorf("Open = %v, want ErrUnsafeBinary naming the plugin and %q", err, tt.says)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

// TestOversizedAnswerIsRefused: an answer over MaxAnswer fails the call
// with an error naming the plugin, without the host taking the memory.
func TestOversizedAnswerIsRefused(t *testing.T) {
	b := backendOf(t, open(t, "testplugin", nil))
	ctx := ctxFor(t, 60*time.Second)
	if _, err := b.Load(ctx, "big:1000"); err != nil {
		t.Fatalf("a small answer: %v", err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := b.Load(ctx, "big:268435456") // 256 MiB
	runtime.ReadMemStats(&after)
	if !errors.Is(err, provider.ErrInvalidRecord) || !strings.Contains(err.Error(), `plugin "testplugin"`) || !strings.Contains(err.Error(), "larger than a plugin may send") {
		t.Fatalf("Load of 256 MiB = %v, want a refusal naming the plugin", err)
	}
	if grew := int64(after.TotalAlloc) - int64(before.TotalAlloc); grew > 64<<20 {
		t.Errorf("the host allocated %d MiB for a refused answer", grew>>20)
	}
	// The plugin still answers.
	if _, err := b.Load(ctx, "big:1000"); err != nil {
		t.Errorf("after the refusal: %v", err)
	}
}
