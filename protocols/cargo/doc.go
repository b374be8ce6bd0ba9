// Package cargo speaks cargo's credential-provider protocol (cargo 1.74 and
// later; "Credential Provider Protocol" in the Cargo Book, implemented by
// the cargo-credential crate), so that cargo fetches from and publishes to
// an authenticated registry with a credhelper token.
//
// cargo runs the provider with the single argument --cargo-plugin and
// speaks JSON lines: Serve first writes the hello {"v":[1]}, then answers
// each request line until cargo closes standard input.
//
//   - get: when a Rule names the request's registry (by its name in cargo's
//     configuration, or its index URL), the answer is
//     {"Ok":{"kind":"get","token":...,"cache":"expires","expiration":N,
//     "operation_independent":true}} with N the Unix second min_validity
//     before the token expires (cargo reuses a token for one invocation
//     while it has more than a minute left); a token that never expires is
//     cached for the session. A registry no rule names is
//     {"Err":{"kind":"url-not-supported"}}, so cargo asks its next provider.
//   - login and logout: credhelper owns the token, so a registry it serves
//     answers {"Err":{"kind":"operation-not-supported","message":...}}
//     with the message naming `credhelper put`; others are
//     url-not-supported.
//   - anything else, a request line that is not JSON, or a protocol version
//     other than 1: an error of kind "other" with a message saying what is
//     wrong.
//
// Errors travel as {"Err":{"kind":..., "message":..., "caused-by":[]}} on
// standard output and the process exits 0: cargo reads the answer line
// before it looks at the exit status, and a non-zero status would replace
// the message with "credential process failed". Messages never contain a
// secret. Serve returns an error only when it cannot write.
package cargo
