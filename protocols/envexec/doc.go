// Package envexec hands a credential to programs through environment
// variables: Write prints them for a shell, a dotenv file or JSON
// (`credhelper env`), and Runner runs a command with them set
// (`credhelper exec -- CMD ARGS...`).
//
// # Variables
//
// Vars names the variables. By default the auth token goes into
// MOMENTO_API_KEY and its endpoint into MOMENTO_ENDPOINT, the pair Momento's
// SDKs read for v2 keys (and which they accept for older keys too); the
// endpoint variable is left out when the token names no endpoint (an opaque
// OAuth2 access token) and no endpoint is stored. The expiry variable is off
// by default; when named it holds the pair's expiry in Unix seconds, "0" for
// a pair that never expires. Names must match [A-Za-z_][A-Za-z0-9_]*.
//
// # Formats
//
//   - sh: `export NAME='value'` lines; a single quote inside a value ends
//     the quoted string, is written escaped with a backslash and a new
//     quoted string begins, so that any POSIX shell reads the value back
//     exactly.
//   - dotenv: `NAME="value"` lines with \ and " escaped. Dotenv dialects
//     disagree about $ (interpolation), newlines and backquotes, so a value
//     containing one is refused rather than written ambiguously.
//   - json: one object {"NAME": "value", ...}.
//
// # exec
//
// Runner.Run starts the command with the variables added to its
// environment (never to its arguments, which other users can read in the
// process table), forwards every signal it receives on Options.Signals to
// the child, and returns the child's exit status, or 128+N when a signal N
// ended it, as shells report it. A command that is not found is exit status
// 127 and one that cannot be executed 126, with a message, as in sh.
//
// With Options.OnRotate, Run re-resolves the credential while the child runs
// (every CheckEvery, default 30s, and at the latest when a quarter of the
// remaining validity has passed, so that a rotation by the refresh engine or
// by another host is seen long before the old token expires) and, when the
// auth token changed, either sends the child a signal (the child must then
// fetch the new token itself, for example with `credhelper get`: a running
// process's environment cannot be changed from outside) or stops it with
// SIGTERM (SIGKILL after StopTimeout) and starts it again with the new
// variables. A failed check is logged and retried; the child keeps running.
//
// Run ignores the cancellation of its context while the child runs: an
// interrupt reaches the child as a forwarded signal, and the child decides
// when to exit. The context bounds credential resolution only.
package envexec
