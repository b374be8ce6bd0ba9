package fsutil

import (
	"os"
	"path/filepath"
)

// xdgDir returns $env when it is an absolute path, else ~/fallback (empty
// if the home directory is unknown). The XDG Base Directory specification
// says a relative value is invalid and must be ignored: honouring it would
// make the directory depend on the working directory.
func xdgDir(env, fallback string) string {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return ""
	}
	return filepath.Join(home, fallback)
}

// ConfigHome returns $XDG_CONFIG_HOME, else ~/.config.
func ConfigHome() string { return xdgDir("XDG_CONFIG_HOME", ".config") }

// StateHome returns $XDG_STATE_HOME, else ~/.local/state.
func StateHome() string { return xdgDir("XDG_STATE_HOME", filepath.Join(".local", "state")) }

// RuntimeDir returns $XDG_RUNTIME_DIR when it is an absolute path, else "".
func RuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return d
	}
	return ""
}
