// Package provider is the small core every other credhelper package depends
// on: the token Pair, its stored Record form, auth-token decoding, the
// CredentialProvider, Backend and Issuer contracts, the sentinel errors
// callers branch on with errors.Is, and the one table of error kinds (Kind,
// KindsOf, Error) that the plugin and agent boundaries and every backend use,
// so an error keeps its kind across a process boundary.
//
// Nothing in this package does I/O or caches; implementations live in
// backends/..., issuers/... and refresh.
package provider
