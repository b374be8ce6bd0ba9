// Package cli is the credhelper command: every subcommand, the helper
// protocols' entry points (docker, git, kubectl, env, exec, goauth, cargo,
// kubelet, bazel, terraform), the agent and the demo. cmd/credhelper-full is its one-line main; cmd/credhelper is a
// small front that answers `credhelper get` from a running agent without
// loading any of this, and executes credhelper-full for everything else.
//
// The testable core is Run over explicit arguments and streams; nothing
// here reads os.Args or calls os.Exit.
package cli

import (
	"context"
	"io"
)

// Run runs the command line args (args[0] is the program name, which selects
// a face when it is docker-credential-*, git-credential-*, credhelper-bazel
// or terraform-credentials-*; a lone --cargo-plugin selects cargo's) and
// returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr)
}
