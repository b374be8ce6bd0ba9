//go:build unix

package file_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// TestSwapThroughLinkUpdatesTarget: a key that is a symbolic link names
// the file it points to; a swap writes that file and keeps the link, so
// both spellings of one credential stay one credential.
func TestSwapThroughLinkUpdatesTarget(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "cred.json")
	v1, err := b.CompareAndSwap(ctx, real, "", backendtest.Value("one"))
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	e, err := b.Load(ctx, link)
	if err != nil || e.Version != v1 {
		t.Fatalf("Load through the link = %v, %v", e.Version, err)
	}
	v2, err := b.CompareAndSwap(ctx, link, v1, backendtest.Value("two"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v %v", fi, err)
	}
	e, err = b.Load(ctx, real)
	if err != nil || e.Version != v2 {
		t.Fatalf("the target was not updated: %v, %v", e.Version, err)
	}
	// The swap through the real path sees the version written through the
	// link: one lock, one file.
	if _, err := b.CompareAndSwap(ctx, real, v1, backendtest.Value("three")); !errors.Is(err, provider.ErrConflict) {
		t.Fatalf("stale swap through the real path: %v, want ErrConflict", err)
	}
	if _, err := os.Lstat(link + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a lock file was created beside the link instead of the target")
	}
}

// TestSpecialFilesFailFast: a FIFO, a device, a directory or an oversized
// file as the credential or its lock fails within a second with an error
// that says what it is, and nothing is read.
func TestSpecialFilesFailFast(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<40); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.json")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifoLock := filepath.Join(dir, "locked.json")
	if err := syscall.Mkfifo(fifoLock+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, says string
	}{
		{"fifo", fifo, "named pipe"},
		{"dev zero", zero, "character device"},
		{"directory", dir, "a directory"},
		{"oversized", big, "1099511627776 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, err := b.Load(ctx, tt.key)
			if !errors.Is(err, provider.ErrInvalidRecord) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Load: %v, want ErrInvalidRecord saying %q", err, tt.says)
			}
			_, err = b.CompareAndSwap(ctx, tt.key, "", backendtest.Value("x"))
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("CompareAndSwap: %v, want an error saying %q", err, tt.says)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
	t.Run("fifo lock", func(t *testing.T) {
		start := time.Now()
		_, err := b.CompareAndSwap(context.Background(), fifoLock, "", backendtest.Value("x"))
		if err == nil || !strings.Contains(err.Error(), "lock file") || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("CompareAndSwap with a FIFO lock: %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("took %v", el)
		}
	})
}

// TestRefusesPathsOthersControl needs root: it plants files and links as
// another user (uid 4242) and checks that every one is refused and that
// nothing is written through them.
func TestRefusesPathsOthersControl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test plants files as another user and must run as root (CI runs as root)")
	}
	const other = 4242
	b := newBackend(t)
	ctx := context.Background()
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim", "prod.json")
	vv, err := b.CompareAndSwap(ctx, victim, "", backendtest.Value("prod"))
	if err != nil {
		t.Fatal(err)
	}

	// A file another user owns, however private, is not served.
	theirs := filepath.Join(shared, "theirs.json")
	if err := os.WriteFile(theirs, backendtest.Value("planted"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, other, other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, theirs); !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), "belongs to uid 4242") {
		t.Errorf("Load of another user's file: %v", err)
	}

	// A lock link another user planted beside our file is refused and
	// creates nothing where it points.
	ours := filepath.Join(shared, "ours.json")
	target := filepath.Join(base, "etc-passwd-never")
	if err := os.Symlink(target, ours+".lock"); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(ours+".lock", other, other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndSwap(ctx, ours, "", backendtest.Value("ours")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("swap with a planted lock link: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the planted lock link's target was created")
	}

	// A credential path another user linked to our production file is
	// refused: nothing is spent or written through it.
	lure := filepath.Join(shared, "lure.json")
	if err := os.Symlink(victim, lure); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(lure, other, other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, lure); !errors.Is(err, provider.ErrPermission) {
		t.Errorf("Load through another user's link: %v", err)
	}
	if _, err := b.CompareAndSwap(ctx, lure, vv, backendtest.Value("stolen")); !errors.Is(err, provider.ErrPermission) {
		t.Errorf("swap through another user's link: %v", err)
	}
	if err := newBackend(t).(interface {
		CheckWrite(context.Context, string) error
	}).CheckWrite(ctx, lure); !errors.Is(err, provider.ErrPermission) {
		t.Errorf("CheckWrite through another user's link: %v", err)
	}
	if e, err := b.Load(ctx, victim); err != nil || e.Version != vv {
		t.Errorf("the production file changed: %v %v", e.Version, err)
	}

	// A directory others can write, not sticky, is refused for reads and
	// writes alike.
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndSwap(ctx, filepath.Join(open, "c.json"), "", backendtest.Value("x")); !errors.Is(err, provider.ErrPermission) || !strings.Contains(err.Error(), "chmod go-w "+open) {
		t.Errorf("swap in a world-writable directory: %v", err)
	}
}
