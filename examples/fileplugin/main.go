// Command fileplugin serves credhelper's file backend as an out-of-process
// plugin: the complete example of a backend plugin. The key of each
// credential is the path of its file (relative paths resolve against -dir).
//
// It is not run by hand: credhelper starts it, e.g.
//
//	credhelper --backend plugin:file:/home/me/.config/credhelper/prod.json get
//
// with the plugin's path and SHA-256 in the config (see the README).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/plugins"
)

func main() {
	dir := flag.String("dir", "", "directory that relative keys resolve against")
	flag.Parse()
	// Diagnostics go to stderr, which the host forwards into its logger;
	// stdout belongs to the plugin handshake.
	log := plugins.NewLogger(os.Stderr, slog.LevelInfo)
	b, err := file.New(func(o *file.Options) {
		o.Dir = *dir
		o.Logger = log
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugins.ServeBackend(b)
}
