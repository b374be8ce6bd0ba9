// Package lifetimes tests, through the built binaries, how credhelper
// treats token lifetimes as real issuers define them: OAuth2 refresh after
// the access token expired, responses without a lifetime, opaque tokens,
// min_validity against the lifetime, cold callers and read-only sources,
// broken lineages per issuer and reuse grace periods. The OAuth2 cases run
// against the built-in dev issuer and against ory/fosite, a third-party
// OAuth2 server library, in the test process.
package lifetimes
