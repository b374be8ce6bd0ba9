// Command credhelper-full is the whole credhelper command line. Users run
// it through credhelper, the small front installed next to it, which
// answers `credhelper get` from a running agent and executes this binary
// for everything else.
package main

import (
	"os"

	"github.com/credhelper/credhelper/internal/cli"
	"github.com/credhelper/credhelper/internal/coredump"
)

func main() {
	// Before any token is in memory: no core file may hold one (the agent
	// runs in this binary too).
	_ = coredump.Disable()
	os.Exit(cli.Main())
}
