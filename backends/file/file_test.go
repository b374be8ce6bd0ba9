package file_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

func newBackend(t testing.TB) provider.Backend {
	b, err := file.New()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Int64
	backendtest.Run(t, backendtest.Config{
		New: newBackend,
		Key: func(t testing.TB) string {
			return filepath.Join(dir, fmt.Sprintf("cred-%d.json", n.Add(1)))
		},
	})
}

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	b := newBackend(t)
	p := filepath.Join(dir, "cred.json")
	if _, err := b.CompareAndSwap(context.Background(), p, "", backendtest.Value("perm")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{p: 0o600, p + ".lock": 0o600, dir: 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o, want %04o", path, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestRefusesReadableFile(t *testing.T) {
	b := newBackend(t)
	p := filepath.Join(t.TempDir(), "cred.json")
	secret := backendtest.Value("world-readable")
	if err := os.WriteFile(p, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := b.Load(context.Background(), p)
	if !errors.Is(err, provider.ErrPermission) {
		t.Fatalf("Load of a 0644 file: err = %v, want ErrPermission", err)
	}
	if !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("error does not say how to fix it: %v", err)
	}
	if strings.Contains(err.Error(), "auth-world-readable") {
		t.Errorf("error leaks the file's content: %v", err)
	}
	// A swap must not overwrite it either, and must leave it untouched.
	if _, err := b.CompareAndSwap(context.Background(), p, "", backendtest.Value("x")); !errors.Is(err, provider.ErrPermission) {
		t.Fatalf("CompareAndSwap over a 0644 file: err = %v, want ErrPermission", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != string(secret) {
		t.Fatal("refused file was modified")
	}
}

func TestRelativeKeysUseDir(t *testing.T) {
	dir := t.TempDir()
	b, err := file.New(func(o *file.Options) { o.Dir = dir })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndSwap(context.Background(), "a/cred.json", "", backendtest.Value("rel")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "cred.json")); err != nil {
		t.Fatalf("relative key not resolved against Dir: %v", err)
	}
}

func TestMissingAndBadKeys(t *testing.T) {
	b := newBackend(t)
	tests := []struct {
		name string
		key  string
		want error
	}{
		{"missing", filepath.Join(t.TempDir(), "nope.json"), provider.ErrNotFound},
		{"directory", t.TempDir(), provider.ErrInvalidRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := b.Load(context.Background(), tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("Load(%s) err = %v, want %v", tt.key, err, tt.want)
			}
		})
	}
	if _, err := b.Load(context.Background(), ""); err == nil {
		t.Fatal("Load of an empty key succeeded")
	}
}
