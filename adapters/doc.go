// Package adapters plugs a provider.CredentialProvider (such as the
// refresh engine) into the interfaces Go programs already hold:
//
//   - TokenSource: an oauth2.TokenSource whose tokens carry the pair's
//     expiry;
//   - Transport: an http.RoundTripper that sets the Authorization header
//     and, when the server answers 401, forces one refresh and retries the
//     request once, if its body can be replayed;
//   - PerRPCCredentials: gRPC credentials.PerRPCCredentials that send the
//     token as "authorization" metadata and require transport security
//     unless told otherwise.
//
// Nothing here caches: the provider does (the engine serves a cached pair
// without locking or allocating), so each request asks it again and always
// gets a pair with the engine's minimum validity left. The refresh on 401
// uses the optional Refresher interface, which *refresh.Engine implements;
// a provider without it is asked again instead. Each adapter is safe for
// concurrent use if its provider is. Errors carry the provider's error
// (never a token).
package adapters
