// Package pluginv1 is the generated Go code for protocol version 1 between
// credhelper and its out-of-process backend and issuer plugins
// (plugin.proto beside this file). Regenerate it with `make proto`;
// never edit the *.pb.go files by hand.
package pluginv1
