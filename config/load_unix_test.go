//go:build unix

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
)

// TestLoadRefusesWhatOthersControlAndSpecialFiles: a config file others
// can write, or in a directory others can write, is refused with the fix;
// a FIFO, a device, a directory or an oversized file fails within a
// second without being read.
func TestLoadRefusesWhatOthersControlAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("[profiles.a]\nbackend = \"file:/x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(good, true); err != nil || len(f.Profiles) != 1 {
		t.Fatalf("a 0644 config of ours: %v", err)
	}
	writable := filepath.Join(dir, "writable.toml")
	os.WriteFile(writable, []byte(""), 0o600)
	os.Chmod(writable, 0o666)
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o700)
	os.WriteFile(filepath.Join(open, "c.toml"), []byte(""), 0o600)
	os.Chmod(open, 0o777)
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, nil, 0o600)
	if err := os.Truncate(big, 59<<20); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		kind       error
		says       []string
	}{
		{"writable by others", writable, fsutil.ErrUntrusted, []string{"config file " + writable, "mode 0666", "chmod go-w " + writable}},
		{"in an open directory", filepath.Join(open, "c.toml"), fsutil.ErrUntrusted, []string{open, "mode 0777", "chmod go-w " + open}},
		{"fifo", fifo, fsutil.ErrNotRegular, []string{"named pipe"}},
		{"dev zero", "/dev/zero", fsutil.ErrNotRegular, []string{"character device"}},
		{"directory", dir, fsutil.ErrNotRegular, []string{"a directory"}},
		{"59 MB", big, fsutil.ErrTooLarge, []string{"61865984 bytes", "limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, explicit := range []bool{true, false} {
				start := time.Now()
				_, err := Load(tt.path, explicit)
				if el := time.Since(start); el > time.Second {
					t.Errorf("took %v", el)
				}
				if !errors.Is(err, tt.kind) {
					t.Fatalf("Load = %v, want %v", err, tt.kind)
				}
				for _, s := range tt.says {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
			}
		})
	}
}

// TestRelativeXDGConfigHomeIgnored: the XDG spec says a relative
// $XDG_CONFIG_HOME is invalid; the config must not depend on the working
// directory.
func TestRelativeXDGConfigHomeIgnored(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("CREDHELPER_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "cfg")
	want := filepath.Join(home, ".config", "credhelper", "config.toml")
	if got := DefaultPath(); got != want {
		t.Errorf("DefaultPath with a relative XDG_CONFIG_HOME = %q, want %q", got, want)
	}
	if got := PluginDir(); got != filepath.Join(home, ".config", "credhelper", "plugins") {
		t.Errorf("PluginDir = %q", got)
	}
}
