package cli

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/protocols/goauth"
)

func (a *app) goauthCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "goauth [URL]",
		Short: "Go's GOAUTH helper: headers for module fetches from matching profiles",
		Long: `goauth speaks the go command's GOAUTH protocol (Go 1.24 and later). With
GOAUTH="credhelper goauth" the go command runs it before its first HTTPS
fetch; it prints, for every profile with [profiles.NAME.goauth]
url_prefixes whose pair is usable now, those prefixes and an
"Authorization: Bearer TOKEN" header (Basic with goauth.username and the
token as password, when set). That first run waits on no issuer: a profile
whose pair must be refreshed first is left out until the server's 401
brings the go command back with the URL. After a
4xx answer the go command runs it again with the URL and the response on
standard input: it answers for the profile covering the URL, refreshing it
first when the server said 401 (the token was rejected).

A profile that cannot be served is reported on standard error (the go
command shows it with -x) and the others are still printed, exit status 0;
when none can be, exit status 1 and the go command fetches without
credentials from credhelper.`,
		Example: `  # ~/.config/credhelper/config.toml:
  #   [profiles.modules]
  #   backend = "vault:secret/ci/goproxy"
  #   [profiles.modules.goauth]
  #   url_prefixes = ["https://goproxy.example.com", "https://git.example.com/org"]
  go env -w GOAUTH="credhelper goauth"
  credhelper goauth`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			defer a.warnUnusable()
			var r face.Resolver = profileResolver{a}
			var in io.Reader // the first run has no input: never read a terminal
			if len(args) > 0 {
				in = a.stdin
			} else {
				// The first run primes the go command's cache before any
				// fetch: it answers what is usable now and waits on no
				// issuer (a 401 brings the go command back with the URL).
				r = readyResolver{a}
			}
			h, err := a.goauthHelper(r)
			if err != nil {
				return err
			}
			err = h.Serve(cmd.Context(), args, in, a.stdout)
			var partial *goauth.PartialError
			if errors.As(err, &partial) || len(args) == 0 && errors.Is(err, errNotReady) {
				a.logger.Warn("credhelper: " + oneLine(err.Error()))
				return nil
			}
			return err
		},
	}
}

// goauthHelper maps every profile's goauth.url_prefixes.
func (a *app) goauthHelper(r face.Resolver) (*goauth.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rules := facerules.GoAuth(cfg)
	h, err := goauth.New(r, rules)
	if err != nil {
		return nil, usageError{err}
	}
	return h, nil
}
