package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// exitStatus ends a command with a status whose message, if any, the
// command has already written where its protocol wants it.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// ExitCode returns the status.
func (e exitStatus) ExitCode() int { return int(e) }

// addFaces adds the commands that speak other tools' helper protocols.
func (a *app) addFaces(root *cobra.Command) {
	root.AddCommand(
		a.dockerCommand(),
		a.gitCommand(),
		a.kubectlCommand(),
		a.goauthCommand(),
		a.cargoCommand(),
		a.kubeletCommand(),
		a.bazelCommand(),
		a.terraformCommand(),
		a.envCommand(),
		a.execCommand(),
		a.completionCommand(root),
	)
	_ = root.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := a.loadConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return cfg.ProfileNames(), cobra.ShellCompDirectiveNoFileComp
	})
}

// dispatchByName runs a face chosen by the name the binary was invoked
// under (docker-credential-credhelper, git-credential-credhelper,
// credhelper-bazel, terraform-credentials-credhelper) or by cargo's
// --cargo-plugin.
func (a *app) dispatchByName(ctx context.Context, args []string) (int, bool) {
	name := filepath.Base(args[0])
	face := func(cmd string) (int, bool) {
		argv := append([]string{args[0], cmd}, args[1:]...)
		return a.execute(ctx, a.rootCommand(), argv), true
	}
	switch {
	case len(args) == 2 && args[1] == cargoPluginFlag:
		// cargo runs a credential provider with this one argument.
		return face("cargo")
	case name == bazelHelperName:
		return face("bazel")
	case strings.HasPrefix(name, terraformHelperPrefix):
		return face("terraform")
	case strings.HasPrefix(name, "docker-credential-"):
		return a.dockerByName(ctx, name, args[1:]), true
	case strings.HasPrefix(name, "git-credential-"):
		// git runs "git credential-NAME [ARGS...] ACTION".
		argv := append([]string{args[0], "git"}, args[1:]...)
		return a.execute(ctx, a.rootCommand(), argv), true
	}
	return 0, false
}
