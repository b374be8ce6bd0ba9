package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// app carries what every command needs: streams and resolved settings.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	args0          string
	logger         *slog.Logger

	// global flags
	configPath string
	profile    string
	backend    string
	issuer     string
	endpoint   string
	region     string
	awsProfile string
	journalDir string
	logLevel   string
	minValid   time.Duration
	floor      time.Duration
	fraction   float64
	lease      time.Duration
	issuerTO   time.Duration
	skew       time.Duration
	insecure   bool
	caFile     string
	clientID   string
	secretEnv  string
	defLife    time.Duration
	introURL   string
	unsafeMem  bool

	// cfg, when set, is the configuration loadConfig returns without
	// reading the file again: the agent parses its file once for all its
	// profiles (and again on reload), not once per profile.
	cfg *config.File
	// clients, when set, shares backends and issuers between profiles.
	clients *clientCache
}

// run is the whole program behind a thin main: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, args0: args[0]}
	if code, ok := a.dispatchByName(ctx, args); ok {
		return code
	}
	return a.execute(ctx, a.rootCommand(), args)
}

// execute runs the command tree and maps its error to an exit code: a
// command's own status (exec returns its child's; docker prints its
// message on standard output), 2 for usage errors, 1 otherwise. Every other
// error is printed as one line on standard error.
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
		return st.ExitCode() // the command already said what it had to
	}
	fmt.Fprintf(a.stderr, "credhelper: %s\n", message(err))
	var coder interface{ ExitCode() int } // e.g. exec's 126 and 127
	var ue usageError
	switch {
	case errors.As(err, &coder):
		return coder.ExitCode()
	case errors.As(err, &ue) || isCobraUsage(err):
		return 2
	}
	return 1
}

// oneLine keeps an error to the single line the conventions promise.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// isCobraUsage recognises cobra's own argument and flag errors, which it
// returns as plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
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
profile in the config file (` + "`credhelper --help`" + ` lists the flags).`,
		Example: `  credhelper put --backend file:./cred.json < pair.json
  credhelper get --backend file:./cred.json --issuer dev:127.0.0.1:7777
  credhelper status --profile prod`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup() },
	}
	root.SetVersionTemplate("credhelper {{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVar(&a.configPath, "config", "", "config file (default $CREDHELPER_CONFIG or ~/.config/credhelper/config.toml)")
	f.StringVarP(&a.profile, "profile", "p", "", "profile in the config file (default $CREDHELPER_PROFILE or \"default\")")
	f.StringVar(&a.backend, "backend", "", "backend: file:PATH, env:PREFIX, awssm:NAME_OR_ARN, vault:MOUNT/PATH, plugin:NAME:KEY ($CREDHELPER_BACKEND)")
	f.StringVar(&a.issuer, "issuer", "", "issuer: dev:HOST:PORT, momento[:HOST:PORT], oauth2:TOKEN_URL, plugin:NAME:ARG ($CREDHELPER_ISSUER)")
	f.StringVar(&a.endpoint, "endpoint", "", "require a credential valid for this endpoint ($CREDHELPER_ENDPOINT)")
	f.StringVar(&a.region, "region", "", "AWS region for awssm (default: the AWS SDK's chain)")
	f.StringVar(&a.awsProfile, "aws-profile", "", "AWS named profile for awssm")
	f.StringVar(&a.journalDir, "journal-dir", "", "where issued but uncommitted pairs are journaled (default ~/.local/state/credhelper/journal)")
	f.StringVar(&a.logLevel, "log-level", "", "stderr log level: debug, info, warn, error ($CREDHELPER_LOG_LEVEL; default warn)")
	f.DurationVar(&a.minValid, "min-validity", 0, "least validity a returned token has left (default 1m)")
	f.DurationVar(&a.floor, "refresh-floor", 0, "refresh at least this long before expiry (default 5m)")
	f.Float64Var(&a.fraction, "refresh-fraction", 0, "refresh when this fraction of the lifetime remains (default 0.25)")
	f.DurationVar(&a.lease, "lease", 0, "how long a refresh claim lasts (default 60s)")
	f.DurationVar(&a.issuerTO, "issuer-timeout", 0, "hard ceiling of one issuer call; the lease is renewed while it runs (default 2m)")
	f.DurationVar(&a.skew, "clock-skew", 0, "how far hosts' clocks may disagree (default 30s)")
	f.BoolVar(&a.insecure, "insecure", false, "plaintext gRPC to a momento issuer (loopback dev issuers only)")
	f.StringVar(&a.caFile, "ca-file", "", "PEM CA bundle to trust for the momento issuer")
	f.StringVar(&a.clientID, "client-id", "", "OAuth2 client id ($CREDHELPER_CLIENT_ID)")
	f.StringVar(&a.secretEnv, "client-secret-env", "", "environment variable holding the OAuth2 client secret")
	f.StringVar(&a.introURL, "introspection-url", "", "OAuth2 token introspection endpoint (RFC 7662), asked before taking over an expired claim")
	f.DurationVar(&a.defLife, "default-lifetime", 0, "lifetime assumed for an OAuth2 access token whose response states none (default 1h)")
	f.BoolVar(&a.unsafeMem, "unsafe-refresh-in-memory", false, "agent and exec only: refresh a read-only credential (env:) in memory; other readers would present a spent refresh token")

	root.AddCommand(
		a.versionCommand(),
		a.getCommand(),
		a.statusCommand(),
		a.putCommand(),
		a.generateCommand(),
		a.refreshCommand(),
		a.devIssuerCommand(),
		a.demoCommand(),
		a.demoWorkerCommand(),
		a.agentCommand(),
	)
	a.addFaces(root)
	return root
}

// setup resolves environment defaults and the logger.
func (a *app) setup() error {
	envDefault := func(v *string, name string) {
		if *v == "" {
			*v = os.Getenv(name)
		}
	}
	envDefault(&a.profile, "CREDHELPER_PROFILE")
	envDefault(&a.backend, "CREDHELPER_BACKEND")
	envDefault(&a.issuer, "CREDHELPER_ISSUER")
	envDefault(&a.endpoint, "CREDHELPER_ENDPOINT")
	envDefault(&a.logLevel, "CREDHELPER_LOG_LEVEL")
	envDefault(&a.clientID, "CREDHELPER_CLIENT_ID")
	if a.profile == "" {
		a.profile = "default"
	}
	level := slog.LevelWarn
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			return usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
		}
	}
	a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// loadConfig reads the config file named by --config or the default path.
func (a *app) loadConfig() (*config.File, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path, explicit := a.configPath, a.configPath != ""
	if !explicit {
		path = config.DefaultPath()
		explicit = os.Getenv("CREDHELPER_CONFIG") != ""
	}
	if path == "" {
		return &config.File{}, nil
	}
	f, err := config.Load(path, explicit)
	if err != nil {
		return nil, usageError{err}
	}
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
