// Package momento is a credhelper issuer for Momento API keys: a gRPC
// client for Momento's control-plane auth.Auth service (RefreshApiToken,
// GenerateApiToken), built on our own wire definitions in authpb.
//
// By default a call goes to control.<endpoint>:443 over TLS, the endpoint
// being the one the pair's auth token names (provider.Pair.ResolveEndpoint).
// Options.Addr overrides it, for example to reach issuers/dev on loopback.
//
// # Delivery
//
// The refresh engine must know whether a failed refresh may have spent the
// refresh token. Each call therefore opens its own connection and waits,
// bounded by the call's deadline, until that connection is ready before it
// sends anything. If it never becomes ready (connection refused, name
// resolution, TLS handshake failure, deadline while connecting) the request
// certainly was not sent, and the error wraps both a provider.TransientError
// and provider.ErrNotDelivered. Once the connection is ready the request is
// sent with WaitForReady(false), and any later failure (deadline, reset,
// Unavailable) is "maybe delivered": a plain transient error. A refresh
// happens once per key lifetime, so a connection per call costs little and
// keeps one call's connection state from leaking into the next (no channel
// backoff carried over from an earlier failure).
//
// An Issuer holds no connection and no state; it is safe for concurrent
// use.
package momento
