// Package vault is a provider.Backend that keeps each credential in a
// HashiCorp Vault KV version 2 secret and uses Vault's own check-and-set
// (options.cas) for CompareAndSwap.
//
// A key is "MOUNT/PATH": the mount of a KV v2 secrets engine (which may
// itself contain slashes) followed by the secret's path in it, for example
// "secret/credhelper/momento" or "team/kv/prod/momento". The backend finds
// the mount with sys/internal/ui/mounts, as the vault CLI does, and refuses a
// KV version 1 mount: it has no versions to compare. The mount lookup is
// cached for the Backend's lifetime.
//
// The record's fields are the secret's keys (apiKey, refreshToken,
// validUntil, ...; a lease is a nested object), so `vault kv get` shows
// them, and keys credhelper does not know are preserved. The version is the
// KV version number as a decimal string. A secret whose latest version is
// soft-deleted or destroyed reads as not found and can be created again.
// Deleting, undeleting and destroying versions do not change Vault's current
// version, so check-and-set cannot see them: a CompareAndSwap is atomic
// against every other write, not against an operator deleting or undeleting
// a version at the same instant.
//
// Numbers in a record are stored by Vault as JSON numbers and read back
// through float64 on the server, so integers above 2^53 lose precision;
// credhelper's own fields (epoch seconds, generations) stay far below that.
//
// Authentication is a Vault token (VAULT_TOKEN, Options.Token or
// Options.TokenFile) or an AppRole login. An AppRole token is renewed in
// the background by the API's lifetime watcher, and the backend logs in
// again when the token reaches its maximum TTL; Close stops that.
//
// A Backend is safe for concurrent use.
package vault
