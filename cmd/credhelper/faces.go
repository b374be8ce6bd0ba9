package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// ownExitStatus marks commands whose exit status is their own (exec returns
// its child's, docker exits 1 after printing its message on standard
// output); dispatchByName runs them so that run's 0/1/2 mapping does not
// apply.
const ownExitStatus = "credhelper/own-exit-status"

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
// under (docker-credential-credhelper, git-credential-credhelper), and the
// commands marked ownExitStatus.
func (a *app) dispatchByName(ctx context.Context, args []string) (int, bool) {
	name := filepath.Base(args[0])
	switch {
	case strings.HasPrefix(name, "docker-credential-"):
		return a.dockerByName(ctx, name, args[1:]), true
	case strings.HasPrefix(name, "git-credential-"):
		// git runs "git credential-NAME [ARGS...] ACTION".
		argv := append([]string{args[0], "git"}, args[1:]...)
		return a.execute(ctx, a.rootCommand(), argv), true
	}
	root := a.rootCommand()
	if cmd, _, err := root.Find(args[1:]); err == nil && cmd.Annotations[ownExitStatus] != "" {
		return a.execute(ctx, root, args), true
	}
	return 0, false
}

// execute runs root like run does, honouring errors that carry their own
// exit status.
func (a *app) execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args[1:])
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return st.ExitCode()
	}
	fmt.Fprintf(a.stderr, "credhelper: %s\n", oneLine(err.Error()))
	var coder interface{ ExitCode() int }
	var ue usageError
	switch {
	case errors.As(err, &coder):
		return coder.ExitCode()
	case errors.As(err, &ue) || isCobraUsage(err):
		return 2
	}
	return 1
}
