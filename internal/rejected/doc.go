// Package rejected holds the one rule for a credential that a server
// rejected (HTTP 401): whether the rejection is worth a forced refresh.
// The faces whose tool reports a rejection (GOAUTH's re-run, with or
// without an agent) and the http.RoundTripper adapter share it, so that a
// server that rejects every token (a misconfigured proxy, a revoked
// client) costs at most one refresh a minute, not one per request.
package rejected
