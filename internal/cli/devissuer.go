package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

func (a *app) devIssuerCommand() *cobra.Command {
	var (
		listen   string
		lifetime time.Duration
		useTLS   bool
		endpoint string
		dopts    dev.Options
	)
	cmd := &cobra.Command{
		Use:   "dev-issuer",
		Short: "Run the built-in development issuer on a loopback address",
		Long: `dev-issuer serves the built-in issuer until interrupted: Momento's control-plane
gRPC protocol (GenerateApiToken, RefreshApiToken) and an OAuth2 token endpoint
(POST /oauth2/token), both with one-time refresh tokens and reuse detection
that revokes the whole token family, plus call counters at GET /stats. It
mints real signed JWTs. It prints one JSON line with its addresses. Its
session token and OAuth2 client credentials are fixed, public development
values: never use it for anything but tests and demos.`,
		Example: `  credhelper dev-issuer --listen 127.0.0.1:7777 &
  MOMENTO_SESSION_TOKEN=dev-session-token credhelper generate --issuer dev:127.0.0.1:7777 \
      --session-token-env MOMENTO_SESSION_TOKEN --ttl 1h --backend file:./cred.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.setSignals(signalsStopService)
			for name, d := range map[string]time.Duration{"--lifetime": lifetime, "--refresh-ttl": dopts.RefreshTTL, "--reuse-grace": dopts.ReuseGrace} {
				if d < 0 {
					return usagef("dev-issuer: %s %v is negative", name, d)
				}
			}
			if !provider.LoopbackAddr(listen) {
				return usagef("dev-issuer: --listen %q must be a loopback host:port such as 127.0.0.1:7777", listen)
			}
			srv, err := dev.Listen(cmd.Context(), listen, func(o *dev.Options) {
				o.Logger = a.logger
				o.TLS = useTLS
				if lifetime > 0 {
					o.Lifetime = lifetime
				}
				if endpoint != "" {
					o.Endpoint = endpoint
				}
				o.RefreshTTL, o.ReuseGrace = dopts.RefreshTTL, dopts.ReuseGrace
				o.OmitExpiresIn, o.OpaqueTokens, o.NoRotate = dopts.OmitExpiresIn, dopts.OpaqueTokens, dopts.NoRotate
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			info := map[string]string{
				"grpcAddr": srv.Addr(), "issuer": "dev:" + srv.Addr(), "tokenURL": srv.TokenURL(),
				"statsURL": srv.StatsURL(), "endpoint": srv.Endpoint(),
				"sessionToken": srv.SessionToken(), "clientID": srv.ClientID(),
			}
			b, _ := json.Marshal(info)
			fmt.Fprintf(a.stdout, "%s\n", b)
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7777", "loopback address to listen on")
	f.DurationVar(&lifetime, "lifetime", 0, "lifetime of OAuth2 client_credentials pairs (default 1h)")
	f.BoolVar(&useTLS, "tls", false, "serve TLS with a generated self-signed certificate")
	f.StringVar(&endpoint, "endpoint", "", "cell host embedded in minted tokens")
	f.DurationVar(&dopts.RefreshTTL, "refresh-ttl", 0, "OAuth2 refresh tokens live this long (and responses say refresh_token_expires_in) instead of dying with their access token")
	f.BoolVar(&dopts.OmitExpiresIn, "omit-expires-in", false, "OAuth2 responses leave out expires_in")
	f.BoolVar(&dopts.OpaqueTokens, "opaque", false, "OAuth2 access tokens are opaque strings (no JWT iat or exp)")
	f.BoolVar(&dopts.NoRotate, "no-rotate", false, "refresh tokens are not rotated (reusable; no reuse detection)")
	f.DurationVar(&dopts.ReuseGrace, "reuse-grace", 0, "a spent refresh token presented again within this long gets the same answer, as Auth0's and Okta's grace periods")
	return cmd
}
