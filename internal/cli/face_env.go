package cli

import (
	"context"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/protocols/envexec"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// varFlags override the profile's [env] variable names.
type varFlags struct {
	token, endpoint, expiry string
}

func (f *varFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.token, "token-var", "", "variable for the auth token (default: the profile's env.token_var, else "+envexec.DefaultTokenVar+")")
	fl.StringVar(&f.endpoint, "endpoint-var", "", "variable for the endpoint (default: env.endpoint_var, else "+envexec.DefaultEndpointVar+")")
	fl.StringVar(&f.expiry, "expiry-var", "", "variable for the expiry in Unix seconds, 0 for never (default: env.expiry_var, else none)")
}

// vars resolves the variable names: flags, then the profile, then the
// defaults.
func (a *app) vars(f varFlags) (envexec.Vars, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return envexec.Vars{}, err
	}
	p, err := cfg.Profile(a.profile)
	if err != nil {
		return envexec.Vars{}, usageError{err}
	}
	v := envexec.DefaultVars()
	pick := func(dst *string, vals ...string) {
		for _, s := range vals {
			if s != "" {
				*dst = s
				return
			}
		}
	}
	pick(&v.Token, f.token, p.Env.TokenVar)
	pick(&v.Endpoint, f.endpoint, p.Env.EndpointVar)
	pick(&v.Expiry, f.expiry, p.Env.ExpiryVar)
	if err := v.Validate(); err != nil {
		return envexec.Vars{}, usageError{err}
	}
	return v, nil
}

func (a *app) profileSource() provider.CredentialProvider {
	return provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		return a.credential(ctx, a.profile)
	})
}

// heldSource is exec's credential source. Normally it resolves the profile
// at each use (through the agent when one runs). A profile that opts into
// unsafe_refresh_in_memory instead gets one engine held for exec's whole
// life, so that the chain it refreshes in memory is continued, not lost.
func (a *app) heldSource(ctx context.Context) (provider.CredentialProvider, func(), error) {
	r, _, err := a.resolve(a.profile)
	if err != nil || !r.Profile.UnsafeRefreshInMemory {
		return a.profileSource(), func() {}, nil
	}
	w, err := a.wire(ctx, a.profile)
	if err != nil {
		return nil, nil, err
	}
	e, err := a.engine(w, func(o *refresh.Options) { o.UnsafeRefreshInMemory = true })
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	src := provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		pair, err := e.Credential(ctx)
		if err == nil && w.profile.Endpoint != "" {
			err = pair.CheckEndpoint(w.profile.Endpoint)
		}
		return pair, err
	})
	return src, func() { e.Close(); w.Close() }, nil
}

func (a *app) envCommand() *cobra.Command {
	var (
		vf     varFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print the credential as shell export lines, a dotenv file or JSON",
		Long: `env prints the profile's current auth token (and its endpoint, and its expiry
if a variable is named for it) as environment variables: 'export NAME=...'
lines quoted for any POSIX shell (--format sh, the default), a dotenv file
(--format dotenv) or a JSON object (--format json). The names come from
--token-var/--endpoint-var/--expiry-var, else the profile's [env] section,
else MOMENTO_API_KEY and MOMENTO_ENDPOINT (the endpoint is left out for a
token that names none). Prefer 'credhelper exec', which keeps the token out
of files and shell history.`,
		Example: `  eval "$(credhelper env --profile prod)"
  credhelper env --profile prod --format dotenv > .env
  credhelper env --profile ci --token-var API_TOKEN --expiry-var API_TOKEN_EXPIRES --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := envexec.Format(format)
			switch f {
			case envexec.FormatShell, envexec.FormatDotenv, envexec.FormatJSON:
			default:
				return usagef("env: --format %q: use sh, dotenv or json", format)
			}
			v, err := a.vars(vf)
			if err != nil {
				return err
			}
			p, err := a.credential(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			vals, err := v.Values(p)
			if err != nil {
				return err
			}
			return envexec.Write(a.stdout, f, vals)
		},
	}
	vf.add(cmd)
	cmd.Flags().StringVar(&format, "format", "sh", "output format: sh, dotenv or json")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"sh", "dotenv", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) execCommand() *cobra.Command {
	var (
		vf         varFlags
		onRotate   string
		checkEvery time.Duration
		stopAfter  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] -- COMMAND [ARGS...]",
		Short: "Run a command with the credential in its environment",
		Long: `exec runs COMMAND with the profile's current auth token (and endpoint, and
expiry if named) added to its environment, never to its arguments; the
variable names are those of 'credhelper env'. SIGINT, SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to it, and exec exits with its
exit status (128+N if signal N ended it; 127 if COMMAND is not found, 126 if
it cannot be executed).

For long-running commands, --on-rotate says what to do when the credential
rotates: "signal:SIGHUP" (any signal) tells a command that fetches the new
token itself (e.g. with 'credhelper get'), "restart" stops it with SIGTERM
(SIGKILL after --stop-timeout) and starts it again with the new variables.
The credential is checked every --check-every and at the latest when a
quarter of its remaining validity has passed.`,
		Example: `  credhelper exec --profile prod -- ./server --port 8080
  credhelper exec --profile prod --on-rotate signal:SIGHUP -- ./worker
  credhelper exec --profile ci --on-rotate restart --token-var API_TOKEN -- python job.py`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rot, err := envexec.ParseRotate(onRotate)
			if err != nil {
				return usageError{err}
			}
			v, err := a.vars(vf)
			if err != nil {
				return err
			}
			src, closeSrc, err := a.heldSource(cmd.Context())
			if err != nil {
				return err
			}
			defer closeSrc()
			sigs := make(chan os.Signal, 16)
			signal.Notify(sigs, forwardedSignals...)
			defer signal.Stop(sigs)
			// Until the child runs, a signal interrupts exec itself; from
			// the first credential on, the child gets it.
			held := src
			src = provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
				p, err := held.Credential(ctx)
				if err == nil {
					a.setSignals(signalsForwarded)
				}
				return p, err
			})
			r, err := envexec.New(src, v, func(o *envexec.Options) {
				o.Stdin, o.Stdout, o.Stderr = a.stdin, a.stdout, a.stderr
				o.Signals = sigs
				o.OnRotate = rot
				o.Logger = a.logger
				if checkEvery > 0 {
					o.CheckEvery = checkEvery
				}
				if stopAfter > 0 {
					o.StopTimeout = stopAfter
				}
			})
			if err != nil {
				return usageError{err}
			}
			code, err := r.Run(cmd.Context(), args)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitStatus(code)
			}
			return nil
		},
	}
	vf.add(cmd)
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after COMMAND are COMMAND's
	f.StringVar(&onRotate, "on-rotate", "none", "when the credential rotates: none, signal:NAME (e.g. signal:SIGHUP) or restart")
	f.DurationVar(&checkEvery, "check-every", 0, "longest time between credential checks under --on-rotate (default 30s)")
	f.DurationVar(&stopAfter, "stop-timeout", 0, "how long --on-rotate restart waits after SIGTERM before SIGKILL (default 10s)")
	_ = cmd.RegisterFlagCompletionFunc("on-rotate", cobra.FixedCompletions([]string{"none", "restart", "signal:SIGHUP", "signal:SIGUSR1", "signal:SIGUSR2", "signal:SIGTERM"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
