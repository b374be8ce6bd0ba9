// Command devissuerplugin serves credhelper's Momento issuer as an
// out-of-process plugin, pointed at a control endpoint given by flags; with
// -addr 127.0.0.1:PORT -insecure it talks to a local dev issuer
// (`credhelper dev-issuer`). It is the example of an issuer plugin: an
// in-house token service would serve its own provider.Issuer the same way.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/plugins"
)

func main() {
	addr := flag.String("addr", "", "control endpoint host:port (default: from each token's endpoint)")
	insecure := flag.Bool("insecure", false, "plaintext gRPC, for a loopback dev issuer only")
	timeout := flag.Duration("timeout", momento.DefaultTimeout, "bound on each issuer call")
	flag.Parse()
	log := plugins.NewLogger(os.Stderr, slog.LevelInfo)
	iss, err := momento.New(func(o *momento.Options) {
		o.Addr = *addr
		o.Insecure = *insecure
		o.Timeout = *timeout
		o.Logger = log
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugins.ServeIssuer(iss)
}
