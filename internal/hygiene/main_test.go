package hygiene

import (
	"fmt"
	"os"
	"testing"

	"github.com/credhelper/credhelper/internal/testexec"
)

// binDir holds the binaries built once for every test: the credhelper
// front and credhelper-full side by side (as make install lays them out),
// the docker and git helper symlinks, and the example file plugin.
var binDir string

func TestMain(m *testing.M) {
	if step := os.Getenv(attackerStepEnv); step != "" {
		os.Exit(attackerStep(step, os.Args[1:]))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hygiene-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testexec.BuildCredhelper(dir, map[string]string{"fileplugin": "examples/fileplugin"}); err != nil {
		fmt.Fprintf(os.Stderr, "hygiene: %v\n", err)
		return 1
	}
	binDir = dir
	return m.Run()
}
