// Package config reads credhelper's configuration file: named profiles,
// each choosing a backend, an issuer and the refresh settings for one
// credential, plus plugin definitions.
//
// The file is TOML, found at $CREDHELPER_CONFIG or
// $XDG_CONFIG_HOME/credhelper/config.toml (~/.config/credhelper/config.toml).
// A missing file is an empty configuration: every setting can also come from
// flags and environment variables, which take precedence. Secrets never live
// in the file itself; settings name an environment variable or a file that
// holds them.
package config
