// Package bazel speaks the credential helper protocol of Bazel (6.3 and
// later) and other tools that follow the EngFlow credential-helper
// specification, so that remote caches, remote execution and downloads
// carry a credhelper token.
//
// Bazel runs `HELPER get` (--credential_helper=[SCOPE=]PATH) and writes
// {"uri": "https://host/path"} (or grpcs://, for remote cache and
// execution) to standard input. Serve answers, for a URI whose host a Rule
// names,
//
//	{"headers":{"Authorization":["Bearer TOKEN"]},"expires":"2026-01-01T00:00:00Z"}
//
// where expires is min_validity before the token expires, in RFC 3339 with
// whole seconds and "Z", the form Bazel parses ("yyyy-MM-dd'T'HH:mm:ssXXX");
// Bazel 7.1 and later reuse the headers for that URI until then, older
// releases for --credential_helper_cache_duration. A token that never
// expires has no expires. A URI no rule serves is answered {} (no
// credentials), exit 0: --credential_helper scopes decide which hosts reach
// the helper, and a download from a public mirror should go on without
// credentials.
//
// Hosts match without regard to case; "host" or "host:port" match that host
// (a configured host without a port matches any port), and "*.domain"
// matches every host below domain, as Bazel's own scopes do. The most
// specific rule wins: an exact host over a wildcard, a longer wildcard
// domain over a shorter one.
//
// Errors (malformed input, an unknown command, a profile that cannot be
// served): nothing on standard output, one line on standard error, a
// non-zero exit status; Bazel fails the remote call (or warns, for a
// download) and shows the message. Messages never contain a secret.
package bazel
