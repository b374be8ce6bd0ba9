// Package oauth2 is a credhelper issuer for OAuth2 refresh tokens: the
// refresh grant of RFC 6749 section 6 against a token endpoint, built on
// golang.org/x/oauth2, with rotation as the OAuth 2.0 Security Best Current
// Practice recommends (Auth0, Okta, Entra ID and most SaaS APIs).
//
// A refreshed pair carries the access token as its auth token (opaque
// tokens are fine), the refresh token from the response, and a validity
// taken from expires_in. Servers that rotate return a new refresh token and
// reject the old one; a server that does not rotate returns none, and the
// issuer then keeps the old one, which is what such a server expects.
//
// # Errors
//
// invalid_grant (invalid, expired, revoked or reused refresh token) wraps
// provider.ErrRefreshRejected; invalid_client and unauthorized_client wrap
// provider.ErrPermission; HTTP 5xx, 429, temporarily_unavailable and
// network failures are transient. A failure before the request's headers
// were written (connection refused, name resolution, TLS handshake), as
// observed with net/http/httptrace, also wraps provider.ErrNotDelivered:
// the refresh token is unspent.
//
// An Issuer is safe for concurrent use.
package oauth2
