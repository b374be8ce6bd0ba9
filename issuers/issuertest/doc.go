// Package issuertest is the contract test every credhelper issuer passes
// against a real issuer server (for the built-in ones, issuers/dev over
// loopback): refresh rotates, a reused refresh token is rejected and its
// family revoked, an unknown token is rejected, never-expiring lifetimes
// give a zero ValidUntil, an expired pair cannot be refreshed, Generate
// refuses a bad session token, and no error carries a token.
//
// Use it from a test:
//
//	issuertest.Run(t, issuertest.Config{Issuer: iss, Mint: ..., Advance: ...})
package issuertest
