// Package config reads credhelper's configuration file and holds its one
// table of settings: named profiles, each choosing a backend, an issuer and
// the refresh settings for one credential, per-kind tables of backend and
// issuer settings ([profiles.NAME.vault], .aws, .oauth2), the faces'
// tables, plugin definitions and the agent's settings.
//
// Every setting is declared once, as a struct field whose tags give its
// key, flag, environment variable, default and help; Settings reads them,
// and the command's flags, the CREDHELPER_* variables, Resolve (flag over
// environment over profile over [defaults] over the default) and the
// README's reference all follow from it.
//
// The file is TOML, found at $CREDHELPER_CONFIG or
// $XDG_CONFIG_HOME/credhelper/config.toml (~/.config/credhelper/config.toml).
// A missing file is an empty configuration. Only text that is not TOML makes
// the whole file unusable; any other mistake is a Problem with its line,
// scoped to the profile (or plugin, or section) it is in, so that it fails
// only the commands that use it. Secrets never live in the file itself:
// settings name an environment variable or a file that holds them, and a
// secret written inline is refused.
package config
