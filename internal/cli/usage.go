package cli

import (
	"errors"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/credhelper/credhelper/config"
)

// usageLine is the usage line printed after a usage error.
func usageLine(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name() + " COMMAND [flags]"
	}
	return cmd.UseLine()
}

// refuseSingleDash refuses a long flag written with one dash: pflag would
// read -profile as -p rofile. It scans the flags before the first
// positional argument (after which, for exec, they are the child's) and
// stops at "--".
func refuseSingleDash(root *cobra.Command, args []string) (*cobra.Command, error) {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	var names []string
	collect := func(f *pflag.Flag) { names = append(names, f.Name) }
	cmd.Flags().VisitAll(collect)
	cmd.InheritedFlags().VisitAll(collect)
	// The words that name the command and its parents (or their aliases)
	// come before its positional arguments.
	words := map[string]int{}
	for c := cmd; c != nil && c != root; c = c.Parent() {
		words[c.Name()]++
		for _, al := range c.Aliases {
			words[al]++
		}
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return cmd, nil
		case strings.HasPrefix(arg, "--"):
			name, _, hasValue := strings.Cut(arg[2:], "=")
			if f := lookup(name); f != nil && !hasValue && f.NoOptDefVal == "" {
				i++ // its value
			}
		case strings.HasPrefix(arg, "-") && len(arg) > 2:
			name, _, _ := strings.Cut(arg[1:], "=")
			if lookup(name) != nil {
				return cmd, callErrorf("%s is not a flag: long flags take two dashes: did you mean --%s?", arg, name)
			}
			if len(name) >= 4 {
				if near := config.Nearest(name, names); near != "" && len(near) > 1 {
					return cmd, callErrorf("%s is not a flag: did you mean --%s?", arg, near)
				}
			}
		case strings.HasPrefix(arg, "-") && len(arg) == 2:
			f := cmd.Flags().ShorthandLookup(arg[1:])
			if f == nil {
				f = cmd.InheritedFlags().ShorthandLookup(arg[1:])
			}
			if f != nil && f.NoOptDefVal == "" {
				i++
			}
		case words[arg] > 0:
			words[arg]--
		default:
			// The first positional argument: what follows may be a
			// child's (exec).
			return cmd, nil
		}
	}
	return cmd, nil
}

// cobra's own errors are plain; these recognise the ones that are usage
// mistakes and say them the way the rest of credhelper does.
var (
	reUnknownFlag    = regexp.MustCompile(`^unknown flag: (--?\S+)`)
	reUnknownShort   = regexp.MustCompile(`^unknown shorthand flag: '(.)' in (-\S+)`)
	reNeedsArgument  = regexp.MustCompile(`^flag needs an argument: (?:'(.)' in -\S+|(--\S+))`)
	reInvalidArg     = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-., )?(--\S+)" flag: (.*)$`)
	reUnknownCommand = regexp.MustCompile(`^unknown command "(.*)" for "(.*)"`)
)

// cobraUsage turns cobra's and pflag's plain usage errors into usage errors
// that name the flag or command as written and suggest the nearest valid
// one; any other error is returned as it is.
func cobraUsage(cmd *cobra.Command, err error) error {
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	msg := err.Error()
	flagNames := func() []string {
		var names []string
		if cmd == nil {
			return nil
		}
		add := func(f *pflag.Flag) { names = append(names, f.Name) }
		cmd.Flags().VisitAll(add)
		cmd.InheritedFlags().VisitAll(add)
		return names
	}
	if m := reUnknownFlag.FindStringSubmatch(msg); m != nil {
		name := strings.TrimLeft(strings.SplitN(m[1], "=", 2)[0], "-")
		if near := config.Nearest(name, flagNames()); near != "" {
			return callErrorf("unknown flag %s: did you mean --%s?", m[1], near)
		}
		return callErrorf("unknown flag %s: 'credhelper %s --help' lists the flags", m[1], subcommandPath(cmd))
	}
	if m := reUnknownShort.FindStringSubmatch(msg); m != nil {
		return callErrorf("unknown flag %s: 'credhelper %s --help' lists the flags", m[2], subcommandPath(cmd))
	}
	if m := reNeedsArgument.FindStringSubmatch(msg); m != nil {
		name := m[2]
		if m[1] != "" {
			name = "-" + m[1]
		}
		return callErrorf("%s needs a value", name)
	}
	if m := reInvalidArg.FindStringSubmatch(msg); m != nil {
		return callErrorf("%s: %s", m[2], m[3])
	}
	if m := reUnknownCommand.FindStringSubmatch(msg); m != nil {
		var names []string
		if cmd != nil {
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
		}
		if near := config.Nearest(m[1], names); near != "" {
			return callErrorf("unknown command %q: did you mean %s?", m[1], near)
		}
		return callErrorf("unknown command %q: the commands are %s", m[1], strings.Join(names, ", "))
	}
	for _, p := range []string{"accepts ", "requires at least", "required flag", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return callError{err}
		}
	}
	return err
}

// subcommandPath is cmd's path without the leading "credhelper".
func subcommandPath(cmd *cobra.Command) string {
	if cmd == nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()))
}

// explainArgs wraps every command's argument check so that a wrong number
// of arguments or a value that is not one of the valid ones is a usage
// error saying what the command takes, with the valid values.
func explainArgs(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c == root || c.Args == nil {
			return
		}
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return argsError(cmd, args)
			}
			return nil
		}
	}
	walk(root)
}

// argsError says what cmd takes, given the arguments it was called with.
func argsError(cmd *cobra.Command, args []string) error {
	name := subcommandPath(cmd)
	valid := make([]string, 0, len(cmd.ValidArgs))
	for _, v := range cmd.ValidArgs {
		valid = append(valid, strings.SplitN(v, "\t", 2)[0])
	}
	takes := strings.TrimSpace(strings.TrimPrefix(strings.ReplaceAll(cmd.Use, "[flags]", ""), cmd.Name()))
	switch {
	case len(valid) > 0 && len(args) == 0:
		return callErrorf("%s needs one of: %s", name, strings.Join(valid, ", "))
	case len(valid) > 0:
		for _, arg := range args {
			if !contains(valid, arg) {
				return callErrorf("%s: %q is not one of: %s", name, arg, strings.Join(valid, ", "))
			}
		}
		return callErrorf("%s takes one of %s, not %d arguments", name, strings.Join(valid, ", "), len(args))
	case takes == "" && len(args) > 0:
		if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
			return callErrorf("%s takes no arguments, but got %q: did you mean --profile %s?", name, args[0], args[0])
		}
		return callErrorf("%s takes no arguments, but got %q", name, strings.Join(args, " "))
	case len(args) == 0:
		return callErrorf("%s needs %s", name, strings.TrimSpace(strings.TrimPrefix(takes, "--")))
	}
	return callErrorf("%s takes %s, not %q", name, takes, strings.Join(args, " "))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// addCompletions completes --backend and --issuer with the registry's
// schemes.
func (a *app) addCompletions(root *cobra.Command) {
	for _, kind := range []schemeKind{backendScheme, issuerScheme} {
		_ = root.RegisterFlagCompletionFunc(string(kind), func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var out []string
			for _, s := range schemesOf(kind) {
				out = append(out, s.name+":\t"+s.help)
			}
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		})
	}
}
