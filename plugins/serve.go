package plugins

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/credhelper/credhelper/provider"
)

// parentPoll is how often a served plugin checks that its host still runs.
const parentPoll = 500 * time.Millisecond

// ServeConfig says what a plugin process serves. At least one of Backend
// and Issuer must be set.
//
// The host learns what else each one can do from the plugin's declaration,
// which Serve derives from the values themselves (by type assertion, as
// the host would in process): a plugin declares nothing by hand, and the
// host's view implements exactly the optional interfaces the served value
// does.
type ServeConfig struct {
	// Backend is served as the plugin's provider.Backend. It declares
	// read-only when it is a provider.ReadOnlyBackend whose ReadOnly
	// reports true (asked once per process), and write check when it is a
	// provider.WriteChecker.
	Backend provider.Backend
	// Issuer is served as the plugin's provider.Issuer. It declares
	// generate when it is a provider.Generator, introspect when it is a
	// provider.Introspector, and the refresh policy it states as a
	// provider.RefreshPolicyIssuer (else the zero policy).
	Issuer provider.Issuer
}

// ServeBackend serves b as a plugin until the host closes it. Call it from
// main, before anything is written to stdout.
func ServeBackend(b provider.Backend) { Serve(ServeConfig{Backend: b}) }

// ServeIssuer serves i as a plugin until the host closes it. Call it from
// main, before anything is written to stdout.
func ServeIssuer(i provider.Issuer) { Serve(ServeConfig{Issuer: i}) }

// Serve serves cfg as a plugin until the host closes it, and exits when the
// host dies. Call it from main, before anything is written to stdout:
// stdout carries go-plugin's handshake, and after it nothing written there
// reaches the host. Log to stderr (see NewLogger). Run by hand, outside a
// host, it says it is a plugin and exits with status 1.
func Serve(cfg ServeConfig) {
	if cfg.Backend == nil && cfg.Issuer == nil {
		fmt.Fprintln(os.Stderr, "plugins: Serve was given neither a Backend nor an Issuer: the plugin's main must pass one")
		os.Exit(1)
	}
	stderr := os.Stderr // go-plugin redirects os.Stderr once serving
	watchParent(stderr)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(cfg.Backend, cfg.Issuer),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           hclogJSON(stderr),
	})
}

// watchParent exits the process when the host goes away without closing
// it: when the stdin pipe from the host closes (hosts of this package set
// envWatchStdin; another host's stdin could be a terminal, which must not
// be read) or when the process is re-parented.
func watchParent(stderr io.Writer) {
	exit := func(why string) {
		NewLogger(stderr, nil).Info("plugins: the host went away; exiting", "why", why)
		os.Exit(0)
	}
	if os.Getenv(envWatchStdin) == "1" {
		stdin := os.Stdin
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			exit("stdin closed")
		}()
	}
	if ppid := os.Getppid(); ppid > 1 {
		go func() {
			for range time.Tick(parentPoll) {
				if os.Getppid() != ppid {
					exit("parent changed")
				}
			}
		}()
	}
}
