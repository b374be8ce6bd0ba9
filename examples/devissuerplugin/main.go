// Command devissuerplugin serves one of credhelper's issuers as an
// out-of-process plugin: the Momento issuer, pointed at a control endpoint
// given by flags (with -addr 127.0.0.1:PORT -insecure it talks to a local
// dev issuer, `credhelper dev-issuer`), or, with -token-url, the OAuth2
// issuer. It is the example of an issuer plugin: an in-house token service
// would serve its own provider.Issuer the same way.
//
// A plugin declares nothing by hand: plugins.ServeIssuer tells the host
// what the served issuer implements. Served here, the Momento issuer can
// generate first pairs and states Momento's refresh policy; the OAuth2
// issuer cannot generate, states OAuth2's policy (a refresh token outlives
// its access token), and can say whether a refresh token is still active
// when -introspection-url is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
)

func main() {
	addr := flag.String("addr", "", "Momento control endpoint host:port (default: from each token's endpoint)")
	insecure := flag.Bool("insecure", false, "plaintext gRPC to the Momento endpoint, for a loopback dev issuer only")
	timeout := flag.Duration("timeout", momento.DefaultTimeout, "bound on each issuer call")
	tokenURL := flag.String("token-url", "", "serve the OAuth2 issuer of this token endpoint instead of Momento's")
	introspectionURL := flag.String("introspection-url", "", "OAuth2: the RFC 7662 introspection endpoint, to tell whether a refresh token is still active")
	clientID := flag.String("client-id", "", "OAuth2: the client id")
	secretEnv := flag.String("client-secret-env", "", "OAuth2: the environment variable holding the client secret (pass it to the plugin with the plugin's env setting)")
	flag.Parse()
	log := plugins.NewLogger(os.Stderr, slog.LevelInfo)
	var iss provider.Issuer
	var err error
	if *tokenURL != "" {
		iss, err = oauth2.New(*tokenURL, func(o *oauth2.Options) {
			o.ClientID = *clientID
			if *secretEnv != "" {
				o.ClientSecretSource = func(context.Context) (string, error) {
					return provider.CleanSecret(os.Getenv(*secretEnv), "$"+*secretEnv)
				}
			}
			o.IntrospectionURL = *introspectionURL
			o.Timeout = *timeout
			o.Logger = log
		})
	} else {
		iss, err = momento.New(func(o *momento.Options) {
			o.Addr = *addr
			o.Insecure = *insecure
			o.Timeout = *timeout
			o.Logger = log
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugins.ServeIssuer(iss)
}
