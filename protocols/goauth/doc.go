// Package goauth speaks the go command's GOAUTH protocol (Go 1.24 and
// later, cmd/go/internal/auth), so that `go mod download`, `go get` and
// every other module fetch over HTTPS carries a credhelper token.
//
// With GOAUTH="credhelper goauth" the go command runs the helper once per
// process, before its first HTTPS fetch, with no arguments and no input;
// Helper.Serve then prints one block per profile: the profile's URL
// prefixes (one https:// URL a line), a blank line, the header
// "Authorization: Bearer TOKEN" (Basic with the profile's username and the
// token as password when a username is configured), and a blank line. The
// go command caches these for its own lifetime and matches a request's URL
// by path segment: host/a/b, then host/a, then host.
//
// When a fetch answers 4xx, the go command runs the helper again with the
// URL as its one argument and the response's status line and headers on
// standard input. Serve then answers only for the profile whose prefix the
// go command would pick for that URL, and nothing when no profile's prefix
// covers it. On a 401 it first forces one refresh of that profile through
// the Resolver when it is a face.Refresher (the server rejected the token:
// it may have been revoked), so the retry carries a new token; other 4xx
// statuses (404 and 410 are how module proxies say "not here") are answered
// with the current token, never by spending a refresh token.
//
// Failures: the go command ignores everything a helper prints when it exits
// non-zero, and shows the helper's standard error only with -x. Serve
// therefore returns a *PartialError when some profiles were written and
// others failed (the command logs it and exits 0, so the others still
// work), and a plain error when nothing could be written (the command
// prints it on standard error and exits 1). Errors never contain a secret.
package goauth
