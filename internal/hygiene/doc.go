// Package hygiene holds the end-to-end secret hygiene and permission tests
// of the built credhelper binaries; it has no non-test code.
//
// TestSecretHygiene runs every command and protocol face of the front and
// full binaries (and the agent, and a plugin) with distinctive token
// values, including failing variants, and searches every standard output
// and error stream, the agent's debug log, every file under the private
// HOME, XDG and TMPDIR directories the children use, and the command line
// (/proc/PID/cmdline) of every child process and its descendants, sampled
// while they run. An auth token may appear only where a protocol must
// carry it (get, env, exec's child, kubectl's status.token, docker's
// Secret, git's password, generate --out -, the credential file and a
// journal in flight); a refresh token only in the credential file, a
// journal, and generate --out -.
//
// TestPermissions checks the modes credhelper creates (credential files
// and journals 0600, their directories and the agent's socket directory
// 0700, the socket 0600) and what it refuses: credential files group or
// others can read, and plugin binaries others can write.
package hygiene
