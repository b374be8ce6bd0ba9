package hygiene

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the binaries built once for every test: the credhelper
// front and credhelper-full side by side (as make install lays them out),
// the docker and git helper symlinks, and the example file plugin.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hygiene-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	for name, pkg := range map[string]string{
		"credhelper":      "../../cmd/credhelper",
		"credhelper-full": "../../cmd/credhelper-full",
		"fileplugin":      "../../examples/fileplugin",
	} {
		build := exec.Command(goTool, "build", "-o", filepath.Join(dir, name), pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "hygiene: building %s: %v\n", name, err)
			return 1
		}
	}
	for _, name := range []string{"docker-credential-credhelper", "git-credential-credhelper"} {
		if err := os.Symlink("credhelper", filepath.Join(dir, name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}
