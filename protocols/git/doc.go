// Package git speaks git's credential-helper protocol, so that git (and
// anything using git's credential machinery, such as git-lfs) gets an HTTPS
// password from credhelper.
//
// git runs the helper as `git credential-credhelper ACTION` (or through a
// "!command" in credential.helper) and writes key=value lines to its
// standard input, ended by a blank line or end of file. Helper.Serve
// implements the actions:
//
//   - get: reads the request, matches protocol, host, path and username
//     against the configured Rules, and prints username=, password= (the
//     matched profile's current auth token) and, for a pair that expires,
//     password_expiry_utc= (Unix seconds), so that git (2.41 and later)
//     never reuses an expired token from another helper's cache.
//   - store and erase: git calls them after a credential worked or was
//     rejected. credhelper owns its credentials, so both read and discard
//     the request and succeed without doing anything.
//   - any other action is ignored, as git's documentation asks.
//
// Parsing follows git's credential_read: a line without "=" is an error, a
// line longer than MaxLine bytes or a value containing NUL is refused,
// "url=" is parsed into protocol, host, path and username after clearing
// them (as git does), and every other attribute (capability[], authtype,
// state[], wwwauth[], ...) is ignored. The answer never says quit=1: when
// credhelper has nothing to say, git should go on to its next helper or
// prompt.
//
// Matching: a Rule needs a host; its protocol defaults to https, so a
// token is never offered over plain http unless a rule says so. Host and
// protocol compare without regard to case and the port is part of the
// host. A rule with a path matches only requests whose path is that path
// or below it (segment-wise, ignoring a trailing ".git"), which git sends
// only with credential.useHttpPath=true; a rule without a path matches any
// path on the host. A rule with a username matches requests without a
// username or with the same one. The most specific matching rule wins: a
// longer path first; on the same path, a rule naming the request's username,
// then a rule without a username, then a rule naming a user when the request
// names none. Two equally specific rules of different profiles are
// ambiguous and answer nothing.
//
// Errors: git's convention is that a helper with nothing to say prints
// nothing and exits 0, so that git tries the next helper. Serve therefore
// writes nothing unless it has a complete answer; it returns ErrNoMatch
// (wrapped) when no rule matches, ErrBadRequest for a malformed request and
// another error when a matching profile could not be served, and the
// command logs the reason on standard error (the first two at debug level,
// the last at warn level) and still exits 0. Errors never contain a secret.
package git
