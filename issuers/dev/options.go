package dev

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults a Server uses when the Options leave a field empty.
const (
	// DefaultEndpoint is the cell host embedded in minted tokens.
	DefaultEndpoint = "cell-dev.credhelper.local"
	// DefaultSessionToken is the session token GenerateApiToken accepts
	// unless Options.SessionToken names another. The server is for
	// loopback demos and tests; a fixed default keeps `credhelper generate`
	// against it a one-liner.
	DefaultSessionToken = "dev-session-token"
	// DefaultClientID and DefaultClientSecret are the OAuth2 client
	// credentials the token endpoint accepts unless Options name others.
	DefaultClientID     = "credhelper-dev"
	DefaultClientSecret = "dev-client-secret"
	// DefaultLifetime is the lifetime of pairs minted by the OAuth2
	// client_credentials grant when the request does not ask for one.
	DefaultLifetime = time.Hour
)

// Options configure a Server.
type Options struct {
	// Endpoint is the cell host minted tokens are valid for; default
	// DefaultEndpoint. Tokens carry "c": "cache.<Endpoint>" and
	// "cp": "control.<Endpoint>".
	Endpoint string
	// Lifetime is the lifetime of pairs the OAuth2 client_credentials grant
	// mints when the request has no lifetime_seconds; default
	// DefaultLifetime. gRPC GenerateApiToken always names its own.
	Lifetime time.Duration
	// Clock returns the server's notion of now; default time.Now. Tests
	// move it forward to expire keys without sleeping.
	Clock func() time.Time
	// SessionToken is the session token GenerateApiToken accepts; default
	// DefaultSessionToken.
	SessionToken string
	// ClientID and ClientSecret are the OAuth2 client credentials the token
	// endpoint accepts (HTTP Basic or in the form body); defaults
	// DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string
	// PostAuthOnly makes the token endpoint refuse HTTP Basic client
	// authentication with invalid_client, as some servers do; only
	// client_id and client_secret in the form body are accepted.
	PostAuthOnly bool
	// NoRotate makes refresh tokens reusable and the OAuth2 refresh grant
	// answer without a refresh_token, as servers that do not rotate do.
	// Reuse detection is then off.
	NoRotate bool
	// RefreshTTL, when set, makes refresh tokens live that long from when
	// they were minted instead of dying with their access token, as OAuth2
	// servers' refresh tokens do (GitHub Apps: 8-hour access tokens,
	// 6-month refresh tokens), and OAuth2 responses then carry
	// refresh_token_expires_in. A Momento-protocol refresh still needs the
	// current key to be valid.
	RefreshTTL time.Duration
	// OmitExpiresIn makes OAuth2 responses leave out expires_in, as some
	// servers do; the access token still carries its exp claim unless
	// OpaqueTokens is set too.
	OmitExpiresIn bool
	// OpaqueTokens makes OAuth2 responses carry opaque access tokens (random
	// strings with no JWT inside, so no iat or exp to read).
	OpaqueTokens bool
	// ReuseGrace, when set, lets a spent refresh token be presented again
	// within this long after it was spent, answered with the same pair as
	// the first time, as the reuse intervals of Auth0 and the grace period
	// of Okta do; a retry of a request whose answer was lost then succeeds.
	// Later reuse still revokes the family.
	ReuseGrace time.Duration
	// RefreshDelay delays every refresh (gRPC and OAuth2) before it is
	// processed, to simulate a slow issuer. The refresh is processed after
	// the delay even if the client has gone away meanwhile, as a real
	// issuer that received the request may do.
	RefreshDelay time.Duration
	// TLS makes the listener speak TLS with a self-signed certificate
	// generated at start (see Server.ClientTLSConfig).
	TLS bool
	// SigningKey signs minted JWTs; default a fresh random Ed25519 key, so
	// keys minted by one Server are refused by another.
	SigningKey ed25519.PrivateKey
	// Logger receives one line per call, never a token; default silent.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	o.Endpoint = DefaultEndpoint
	o.Lifetime = DefaultLifetime
	o.Clock = time.Now
	o.SessionToken = DefaultSessionToken
	o.ClientID = DefaultClientID
	o.ClientSecret = DefaultClientSecret
	o.Logger = slog.New(slog.DiscardHandler)
}

func (o *Options) validate() error {
	switch {
	case o.Endpoint == "" || strings.ContainsAny(o.Endpoint, "/: \t"):
		return fmt.Errorf("dev: Endpoint %q is not a host name: set a cell host such as %q", o.Endpoint, DefaultEndpoint)
	case o.Lifetime < time.Second:
		return fmt.Errorf("dev: Lifetime %v is under one second: set at least 1s", o.Lifetime)
	case o.Clock == nil:
		return fmt.Errorf("dev: Clock is nil: leave it unset for time.Now")
	case o.SessionToken == "":
		return fmt.Errorf("dev: SessionToken is empty: leave it unset for the default")
	case o.ClientID == "" || o.ClientSecret == "":
		return fmt.Errorf("dev: ClientID and ClientSecret must not be empty: leave them unset for the defaults")
	case o.RefreshDelay < 0:
		return fmt.Errorf("dev: RefreshDelay %v is negative", o.RefreshDelay)
	case o.RefreshTTL < 0 || o.ReuseGrace < 0:
		return fmt.Errorf("dev: RefreshTTL (%v) and ReuseGrace (%v) must not be negative", o.RefreshTTL, o.ReuseGrace)
	case o.SigningKey != nil && len(o.SigningKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("dev: SigningKey is %d bytes, not an Ed25519 private key (%d bytes)", len(o.SigningKey), ed25519.PrivateKeySize)
	case o.Logger == nil:
		return fmt.Errorf("dev: Logger is nil: leave it unset for a silent logger")
	}
	return nil
}
