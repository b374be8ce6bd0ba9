// Package provider is the small core every other credhelper package depends
// on: the token Pair, its stored Record form, auth-token decoding, the
// CredentialProvider, Backend and Issuer contracts, and the sentinel errors
// callers branch on with errors.Is.
//
// Nothing in this package does I/O or caches; implementations live in
// backends/..., issuers/... and refresh.
package provider
