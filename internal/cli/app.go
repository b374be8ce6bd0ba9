package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/facerules"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// usageError marks a mistake in how the command was called or in what it
// was given (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// callError is a usage error in the flags or arguments themselves: the
// usage line follows its message.
type callError struct{ err error }

func (e callError) Error() string { return e.err.Error() }
func (e callError) Unwrap() error { return usageError(e) }

func callErrorf(format string, args ...any) error {
	return callError{fmt.Errorf(format, args...)}
}

// app carries what every command needs: streams and resolved settings.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	args0          string
	logger         *slog.Logger

	// cmd holds the command settings (--config, --profile, --log-level)
	// and flags the profile settings given as flags; env the profile
	// settings given as CREDHELPER_* variables. Resolve merges them with
	// the config file.
	cmd   config.Command
	flags config.Profile
	env   config.Profile

	// Shorthands of cmd and of the flag-or-environment settings, for the
	// commands and faces that read them.
	configPath string
	profile    string
	logLevel   string
	backend    string
	issuer     string
	endpoint   string
	minValid   config.Duration
	// agentSilent is the socket of an agent the front found silent
	// (agent.SilentEnv): not asked again.
	agentSilent string

	cfg *config.File // loaded once
	// clients, when set, shares backends and issuers between profiles
	// (the agent's).
	clients    *clientCache
	warnedOnce bool // the deprecation warning was printed
	// used holds the profiles this command resolved (credential), so a
	// face warns only about the unusable profiles it did not use.
	used      sync.Map        // profile name -> struct{}
	setByFlag map[string]bool // command settings given as flags

	// sig is the first SIGINT or SIGTERM the process received (nil: none);
	// signals says how the command deals with them.
	sig     atomic.Value // os.Signal
	signals atomic.Int32 // a signalPolicy
	// quietInterrupt keeps closeEngine from announcing its wait (demo
	// workers, whose parent says what happened).
	quietInterrupt bool
	// holding is set while closeEngine waits, after an interrupt, for an
	// issuer call that may have been delivered.
	holding atomic.Bool
}

// newApp returns an app on the given streams.
func newApp(args0 string, stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, args0: args0,
		logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// run is the whole program behind a thin main: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newApp(args[0], stdin, stdout, stderr).main(ctx, args)
}

// main runs args: a face chosen by the program's name, or the command tree.
func (a *app) main(ctx context.Context, args []string) int {
	// Before anything that could start a process: the front's note is
	// for this process alone.
	if silent, ok := os.LookupEnv(agent.SilentEnv); ok {
		a.agentSilent = silent
		_ = os.Unsetenv(agent.SilentEnv)
	}
	if code, ok := a.dispatchByName(ctx, args); ok {
		return code
	}
	return a.execute(ctx, a.rootCommand(), args)
}

// execute runs the command tree and maps its error to an exit code: a
// command's own status (exec returns its child's; docker prints its
// message on standard output), 2 for usage errors (with the usage line),
// 1 otherwise. Every other error is printed as one line on standard error,
// its hint last.
func (a *app) execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args[1:])
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	if cmd, err := refuseSingleDash(root, args[1:]); err != nil {
		return a.fail(cmd, err)
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	return a.fail(cmd, err)
}

// fail reports err from cmd and returns the exit code.
func (a *app) fail(cmd *cobra.Command, err error) int {
	var st exitStatus
	if errors.As(err, &st) {
		return st.ExitCode() // the command already said what it had to
	}
	if sig := a.interrupted(); sig != nil && errors.Is(err, context.Canceled) {
		// Interrupted: that is the whole story (the exit status says it too).
		fmt.Fprintf(a.stderr, "credhelper: %s\n", signalName(sig))
		return 1
	}
	err = cobraUsage(cmd, err)
	fmt.Fprintf(a.stderr, "credhelper: %s\n", message(err))
	var ex interface{ Example() string }
	if errors.As(err, &ex) && ex.Example() != "" {
		for _, line := range strings.Split(strings.TrimRight(ex.Example(), "\n"), "\n") {
			fmt.Fprintf(a.stderr, "  %s\n", line)
		}
	}
	var coder interface{ ExitCode() int } // e.g. exec's 126 and 127
	var ue usageError
	var ce callError
	switch {
	case errors.As(err, &coder):
		return coder.ExitCode()
	case errors.As(err, &ce):
		if cmd != nil {
			fmt.Fprintf(a.stderr, "Usage: %s\n", usageLine(cmd))
		}
		return 2
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// oneLine keeps an error to the single line the conventions promise.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "credhelper",
		Short: "Fleet-safe credentials: resolve, refresh and hand out expiring token pairs",
		Long: `credhelper resolves expiring token pairs (an auth token, a one-time refresh
token and an expiry) from a backend (a local file, environment variables, AWS
Secrets Manager, HashiCorp Vault or a plugin) and refreshes them through an
issuer so that each refresh token is spent at most once across every process
and host sharing the credential.

Settings come from flags, then CREDHELPER_* environment variables, then the
profile in the config file, then [defaults]; 'credhelper config check' lists
every problem in the file.`,
		Example: `  credhelper put --backend file:./cred.json < pair.json
  credhelper get --backend file:./cred.json --issuer dev:127.0.0.1:7777
  credhelper status --profile prod`,
		SilenceUsage:       true,
		SilenceErrors:      true,
		DisableSuggestions: true,
		Version:            version,
		PersistentPreRunE:  func(*cobra.Command, []string) error { return a.setup() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A bare credhelper is a usage error: say what it takes.
			fmt.Fprint(a.stderr, shortUsage(cmd))
			return exitStatus(2)
		},
	}
	root.SetVersionTemplate("credhelper {{.Version}}\n")
	a.addSettingFlags(root.PersistentFlags())

	root.AddCommand(
		a.versionCommand(),
		a.getCommand(),
		a.statusCommand(),
		a.putCommand(),
		a.generateCommand(),
		a.refreshCommand(),
		a.configCommand(),
		a.devIssuerCommand(),
		a.demoCommand(),
		a.demoWorkerCommand(),
		a.backgroundRefreshCommand(),
		a.agentCommand(),
	)
	a.addFaces(root)
	a.addCompletions(root)
	explainArgs(root)
	return root
}

// shortUsage is what a bare credhelper prints.
func shortUsage(root *cobra.Command) string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" {
			names = append(names, c.Name())
		}
	}
	return fmt.Sprintf("Usage: credhelper COMMAND [flags]\nCommands: %s\nRun 'credhelper COMMAND --help' for one command, 'credhelper --help' for everything.\n", strings.Join(names, ", "))
}

// addSettingFlags adds a flag for every command and profile setting that
// has one in the settings table, bound to a.cmd and a.flags.
func (a *app) addSettingFlags(fs *pflag.FlagSet) {
	for _, s := range config.Settings() {
		if s.Flag == "" {
			continue
		}
		var root any
		switch s.Scope {
		case config.ScopeCommand:
			root = &a.cmd
		case config.ScopeProfile:
			root = &a.flags
		default:
			continue // the agent's flags are its own command's
		}
		f := fs.VarPF(settingValue{s, root, a}, s.Flag, "", flagHelp(s))
		if s.Type == "boolean" {
			f.NoOptDefVal = "true"
		}
		if s.Flag == "profile" {
			f.Shorthand = "p"
		}
	}
}

// flagHelp is a setting's help line for --help: what it does, its scheme
// forms for backend and issuer, its default and its variable.
func flagHelp(s config.Setting) string {
	h := s.Help
	switch s.Path {
	case "backend":
		h = "where the pair is stored: " + schemeUsages(backendScheme)
	case "issuer":
		h = "who refreshes it: " + schemeUsages(issuerScheme)
	}
	var extra []string
	switch {
	case s.Default != "":
		extra = append(extra, "default "+s.Default)
	case s.Shown != "":
		extra = append(extra, "default "+s.Shown)
	}
	if s.Env != "" {
		extra = append(extra, "$"+s.Env)
	}
	if len(extra) > 0 {
		h += " (" + strings.Join(extra, "; ") + ")"
	}
	return h
}

// settingValue is a pflag.Value that parses a flag as the settings table
// says and stores it in the setting's field.
type settingValue struct {
	s    config.Setting
	root any
	a    *app
}

func (v settingValue) String() string { return v.s.Text(v.root) }

func (v settingValue) Set(x string) error {
	if v.a.setByFlag == nil {
		v.a.setByFlag = map[string]bool{}
	}
	v.a.setByFlag[v.s.Flag] = true
	return v.s.SetText(v.root, x)
}

func (v settingValue) Type() string {
	switch v.s.Type {
	case "list of strings":
		return "strings"
	case "number":
		return "float"
	case "boolean":
		return "bool"
	}
	return v.s.Type
}

// durationFlag is a command's own duration flag (not a setting) parsed as
// settings are: "0s" is set (and zero), a negative or unitless value is
// refused with the same words.
type durationFlag struct{ d config.Duration }

func (f *durationFlag) String() string {
	if !f.d.IsSet() {
		return ""
	}
	return f.d.String()
}
func (f *durationFlag) Set(x string) error { return f.d.UnmarshalText([]byte(x)) }
func (f *durationFlag) Type() string       { return "duration" }

// setup resolves the command settings (flag, then environment, then the
// default), reads the profile settings given in the environment, and builds
// the logger.
func (a *app) setup() error {
	for _, s := range config.Settings() {
		if s.Scope != config.ScopeCommand || s.Flag != "" && a.setByFlag[s.Flag] {
			continue
		}
		v := os.Getenv(s.Env)
		if v == "" {
			v = s.Default
		}
		if v == "" {
			continue
		}
		if err := s.SetText(&a.cmd, v); err != nil {
			return usagef("$%s: %v", s.Env, err)
		}
	}
	if err := config.ReadEnv(config.ScopeProfile, &a.env, os.Getenv); err != nil {
		return usageError{err}
	}
	a.configPath, a.profile, a.logLevel = a.cmd.Config, a.cmd.Profile, a.cmd.LogLevel
	a.backend = cmp.Or(a.flags.Backend, a.env.Backend)
	a.issuer = cmp.Or(a.flags.Issuer, a.env.Issuer)
	a.endpoint = cmp.Or(a.flags.Endpoint, a.env.Endpoint)
	a.minValid = cmpDuration(a.flags.MinValidity, a.env.MinValidity)
	level := slog.LevelWarn
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			return usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
		}
	}
	a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

func cmpDuration(ds ...config.Duration) config.Duration {
	for _, d := range ds {
		if d.IsSet() {
			return d
		}
	}
	return config.Duration{}
}

// loadConfig reads the config file named by --config or the default path,
// once per command.
func (a *app) loadConfig() (*config.File, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path, explicit := a.configPath, a.configPath != ""
	if !explicit {
		path = config.DefaultPath()
		explicit = os.Getenv(config.EnvConfig) != ""
	}
	if path == "" {
		return &config.File{}, nil
	}
	f, err := config.Load(path, explicit)
	var missing *config.MissingFileError
	if errors.As(err, &missing) {
		missing.Profile = a.profile // the example names the profile asked for
	}
	if err != nil {
		return nil, usageError{err}
	}
	facerules.Check(f) // face entries no face can use are problems of their profile
	a.cfg = f
	return f, nil
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print credhelper's version",
		Example: "  credhelper version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "credhelper %s\n", version)
			return nil
		},
	}
}

// warnDeprecated prints, once per process, the first deprecated setting of
// profile name (or of [defaults]) that the command is about to use.
func (a *app) warnDeprecated(cfg *config.File, name string) {
	if a.warnedOnce {
		return
	}
	var mine []config.Problem
	for _, d := range cfg.Deprecated {
		if d.Scope == "profile "+name || d.Scope == "defaults" {
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return
	}
	a.warnedOnce = true
	more := ""
	if n := len(mine) - 1; n > 0 {
		more = fmt.Sprintf(" (and %d more: credhelper config check lists them)", n)
	}
	fmt.Fprintf(a.stderr, "credhelper: warning: %s%s\n", mine[0].Error(), more)
}
