// Package docker speaks the docker credential-helper protocol
// (docker-credential-helpers), so that docker, buildx and every other
// client that honours "credsStore" or "credHelpers" in ~/.docker/config.json
// can get a registry token from credhelper.
//
// The protocol is one action per process: the client runs
// docker-credential-<name> ACTION with a payload on standard input and reads
// the answer on standard output.
//
//   - get: the server URL as raw text on stdin; prints
//     {"ServerURL":...,"Username":...,"Secret":...}. Secret is the mapped
//     profile's current auth token; Username is the profile's docker.username,
//     by default "<token>", which docker reads as "Secret is an identity
//     token".
//   - list: prints {"<server URL>": "<username>", ...} for every mapped
//     registry, read from the configuration alone (no backend is contacted
//     and no secret is printed).
//   - store: docker calls it after every successful "docker login",
//     including a login made with the credentials get returned. credhelper
//     owns the credential, so store never writes anything: storing exactly
//     the pair get would return (same username, Secret equal to the current
//     auth token) succeeds as a no-op; anything else for a mapped registry is
//     refused with a message naming the profile and `credhelper put`, and a
//     registry no profile maps is refused too (map it, or use docker's
//     per-registry "credHelpers" instead of "credsStore" so other
//     registries keep their own store).
//   - erase: called by "docker logout". It never deletes a credhelper
//     credential: a mapped registry is refused with a message that says how
//     to stop serving it, and an unmapped one answers "credentials not found
//     in native keychain", as the keychain helpers do for a missing entry.
//   - version: prints "NAME (github.com/credhelper/credhelper) VERSION".
//
// Errors follow docker-credential-helpers exactly: the message alone on
// standard output and exit status 1. An unknown server URL is the exact
// message "credentials not found in native keychain", which docker's client
// turns into its not-found error; a missing server URL or username is "no
// credentials server URL" / "no credentials username". Messages never
// contain a secret.
//
// Server URLs are matched the way docker and the helpers normalise them:
// the scheme is optional (http and https only), host names compare without
// regard to case, host:port must match exactly, a trailing slash does not
// matter, and a configured URL with a path (https://index.docker.io/v1/)
// matches that path and anything below it; without a path it matches every
// path on the host. When several mapped URLs match, the one with the
// longest path wins; two profiles mapping the same host and path are a
// configuration error reported by New.
//
// The testable core is Helper.Serve, a function of (action, stdin, stdout);
// the command-line wrapper that picks the action from os.Args and turns an
// error into exit status 1 lives in cmd/credhelper.
package docker
