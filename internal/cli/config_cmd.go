package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/config"
)

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config check",
		Short:   "Check the config file and list every problem in it",
		Example: `  credhelper config check`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("credhelper config needs one of: check")
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "List every problem of the config file, with its line and the nearest valid setting",
		Long: `check reads the config file (--config, $CREDHELPER_CONFIG or
~/.config/credhelper/config.toml) and lists every problem, one a line, with
its file and line: unknown settings (with the setting probably meant),
values of the wrong type (with an example), secrets written inline, unknown
backend or issuer schemes, settings the refresh engine would refuse, and
deprecated forms that are still read. A problem makes only the profile it
is in unusable; check lists them all. The exit status is 1 if there is any
problem, 0 if there are only warnings or none.`,
		Example: `  credhelper config check
  credhelper config check --config ./ci.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.checkConfig()
		},
	})
	return cmd
}

// missingConfigError reports that there is no config file to check.
type missingConfigError struct{ path string }

func (e *missingConfigError) Error() string {
	return fmt.Sprintf("there is no config file at %s (set --config or $%s to check another); create it with a profile, for example:", e.path, config.EnvConfig)
}

func (e *missingConfigError) Example() string { return config.ExampleProfile("default") }

// checkConfig prints every problem and warning of the config file.
func (a *app) checkConfig() error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if cfg.Missing || cfg.Path == "" {
		return &missingConfigError{path: cfg.Path}
	}
	problems := append([]config.Problem(nil), cfg.Problems...)
	var warnings []config.Problem
	warnings = append(warnings, cfg.Deprecated...)
	inScope := func(scope string) bool {
		for _, p := range cfg.Problems {
			if p.Scope == scope || p.Scope == "defaults" {
				return true
			}
		}
		return false
	}
	for _, name := range cfg.ProfileNames() {
		if inScope("profile " + name) {
			continue // its decoding problems are listed; resolving it says no more
		}
		note := func(list *[]config.Problem, format string, args ...any) {
			*list = append(*list, config.Problem{File: cfg.Path, Scope: "profile " + name, Msg: fmt.Sprintf("profile %q: ", name) + fmt.Sprintf(format, args...)})
		}
		r, err := cfg.Resolve(name, nil, nil)
		if err != nil {
			note(&problems, "%v", err)
			continue
		}
		if err := checkResolved(r, cfg); err != nil {
			note(&problems, "%v", err)
			continue
		}
		// Plugins it names, and per-kind tables nothing of it reads.
		reads := map[string]bool{}
		for _, kind := range []schemeKind{backendScheme, issuerScheme} {
			v := r.Profile.Backend
			if kind == issuerScheme {
				v = r.Profile.Issuer
			}
			if v == "" {
				continue
			}
			s, _ := parseSpec(kind, v)
			for _, t := range s.scheme.tables {
				reads[t] = true
			}
			if s.scheme.name == "plugin" {
				pl, _, _ := strings.Cut(s.rest, ":")
				if _, ok := cfg.Plugins[pl]; !ok {
					note(&problems, "%s names plugin %q, which has no [plugins.%s]", r.Describe(string(kind)), pl, pl)
				}
			}
		}
		if len(r.Profile.Sink) > 0 {
			// What the agent would refuse at start, for this profile only.
			if _, err := sinkSpecs(r.Profile, (&agentRun{}).protectedPaths(cfg), agentSocketPath(cfg, "")); err != nil {
				var joined interface{ Unwrap() []error }
				if errors.As(err, &joined) {
					for _, e := range joined.Unwrap() { // one per sink
						note(&problems, "%v", e)
					}
				} else {
					note(&problems, "%v", err)
				}
			}
		}
		for _, t := range []string{"aws", "vault", "oauth2"} {
			if !reads[t] && cfg.Profiles[name].HasTable(t) {
				note(&warnings, "[profiles.%s.%s] is set, but neither its backend nor its issuer reads it", name, t)
			}
		}
	}
	if cfg.Agent.MetricsAddr != "" {
		// What the agent would refuse of [agent] (the flag and the
		// variable are the agent command's, not the file's).
		if _, err := agentMetricsAddr(cfg, ""); err != nil && os.Getenv(config.EnvAgentMetricsAddr) == "" {
			problems = append(problems, config.Problem{File: cfg.Path, Scope: "agent", Msg: message(err)})
		}
	}
	for _, p := range problems {
		fmt.Fprintln(a.stdout, p.Error())
	}
	for _, w := range warnings {
		fmt.Fprintln(a.stdout, "warning: "+w.Error())
	}
	switch {
	case len(problems) > 0:
		summary := "a profile with a problem cannot be used, the others can"
		for _, p := range problems {
			if p.Scope == "agent" {
				summary += "; a problem in [agent] stops the agent"
				break
			}
		}
		fmt.Fprintf(a.stdout, "%s: %d problem(s), %d warning(s); %s\n", cfg.Path, len(problems), len(warnings), summary)
		return exitStatus(1)
	case len(warnings) > 0:
		fmt.Fprintf(a.stdout, "%s: no problems, %d warning(s), %d profile(s)\n", cfg.Path, len(warnings), len(cfg.Profiles))
	default:
		fmt.Fprintf(a.stdout, "%s: no problems, %d profile(s)\n", cfg.Path, len(cfg.Profiles))
	}
	return nil
}
