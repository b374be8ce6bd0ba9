package cli

import (
	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/bazel"
)

// bazelHelperName is the link Bazel's --credential_helper names: Bazel
// runs the path with "get" alone, so the face is chosen by name.
const bazelHelperName = "credhelper-bazel"

func (a *app) bazelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "bazel get",
		Short: "Bazel credential helper: headers for remote caches and downloads",
		Long: `bazel speaks the credential helper protocol of Bazel (6.3 and later; the
EngFlow credential-helper specification). Bazel runs
--credential_helper=credhelper-bazel (a link to credhelper made by 'make
install') as "credhelper-bazel get" with {"uri": ...} on standard input;
for a URI whose host a profile's [profiles.NAME.bazel] hosts names
(host, host:port or *.domain) it prints
{"headers": {"Authorization": ["Bearer TOKEN"]}, "expires": "..."} with
expires min_validity before the token expires (RFC 3339, whole seconds),
and {} for any other URI.

Errors go to standard error with exit status 1; Bazel fails the remote call
(or warns, for a download) and shows them.`,
		Example: `  # .bazelrc:
  #   common --credential_helper=*.example.com=/usr/local/bin/credhelper-bazel
  echo '{"uri":"https://cache.example.com/ac/0"}' | credhelper bazel get`,
		Args:      cobra.ArbitraryArgs,
		ValidArgs: []string{"get"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("usage: %s get, with {\"uri\": \"https://...\"} on standard input", bazelHelperName)
			}
			defer a.warnUnusable()
			h, err := a.bazelHelper()
			if err != nil {
				return err
			}
			return h.Serve(cmd.Context(), args[0], a.stdin, a.stdout)
		},
	}
}

// bazelHelper maps every profile's bazel.hosts.
func (a *app) bazelHelper() (*bazel.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rules := facerules.Bazel(cfg)
	h, err := bazel.New(profileResolver{a}, rules, func(o *bazel.Options) { o.MinValidity = facerules.MinValidity(cfg, a.minValid) })
	if err != nil {
		return nil, usageError{err}
	}
	return h, nil
}
