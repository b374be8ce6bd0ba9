// Package dev is credhelper's built-in issuer server, for demos and tests.
//
// A Server mints real signed JWT auth tokens (Ed25519) wrapped in Momento's
// v1 key form, so provider.ParseAuthToken reads their endpoint and expiry;
// issues one-time refresh tokens; and, like OAuth2 servers with reuse
// detection, revokes a whole token family (every pair descended from one
// Generate) when a spent refresh token is presented again.
//
// One listener serves, on one port:
//   - the Momento control-plane gRPC service auth.Auth (GenerateApiToken,
//     RefreshApiToken), wire-compatible with Momento, so issuers/momento
//     talks to it unchanged;
//   - an OAuth2 token endpoint, POST /oauth2/token: the RFC 6749 section 6
//     refresh grant with rotation and reuse detection, and a
//     client_credentials grant that mints a first pair for tests;
//   - GET /stats: the call counters as JSON (see Stats).
//
// With Options.TLS the listener speaks TLS with a self-signed certificate
// the server generates; ClientTLSConfig returns a config that trusts it.
//
// State lives in memory and dies with the Server. Every method is safe for
// concurrent use.
package dev
