package provider

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Pair is one credential as an issuer hands it out: an auth token that
// clients present, a one-time refresh token, and the instant both expire.
//
// A Pair is a value; copying it is cheap and never shares mutable state.
// Its String, GoString and LogValue methods redact both tokens, so a Pair
// printed by mistake leaks nothing.
type Pair struct {
	// AuthToken is what clients present (a Momento API key, an OAuth2
	// access token).
	AuthToken string
	// RefreshToken is spent exactly once to obtain the next Pair. It may be
	// empty only for a pair that never expires.
	RefreshToken string
	// ValidUntil is when the auth token expires; the zero Time means the
	// issuer said it never expires. Whether the refresh token still works
	// after it depends on the issuer (see RefreshPolicy).
	ValidUntil time.Time
	// RefreshValidUntil is when the refresh token expires, when the issuer
	// said so (GitHub's refresh_token_expires_in, Keycloak's
	// refresh_expires_in); the zero Time means not known.
	RefreshValidUntil time.Time
	// IssuedAt is when the issuer handed the pair out, recorded so that
	// every process sizes the pair's refresh window alike; the zero Time
	// means not known.
	IssuedAt time.Time
	// Endpoint is the region or cell the auth token is valid for. Empty
	// means "decode it from the token when needed" (see Pair.ResolveEndpoint).
	Endpoint string
	// Generation counts committed refreshes of this credential's lineage.
	Generation uint64
}

// Never reports whether the pair never expires.
func (p Pair) Never() bool { return p.ValidUntil.IsZero() }

// Remaining returns how long the pair stays valid after now; it is the
// maximum Duration for a pair that never expires, and negative once expired.
func (p Pair) Remaining(now time.Time) time.Duration {
	if p.Never() {
		return time.Duration(1<<63 - 1)
	}
	return p.ValidUntil.Sub(now)
}

// ValidFor reports whether the pair still has at least min validity at now.
func (p Pair) ValidFor(now time.Time, min time.Duration) bool {
	return p.Never() || p.ValidUntil.Sub(now) >= min
}

// Lifetime returns how long the pair lives from when it was issued: from
// IssuedAt when recorded, else from the auth token's JWT iat claim. ok is
// false when neither is known or the pair never expires.
func (p Pair) Lifetime() (d time.Duration, ok bool) {
	if p.Never() {
		return 0, false
	}
	issued := p.IssuedAt
	if issued.IsZero() {
		if info, err := ParseAuthToken(p.AuthToken); err == nil {
			issued = info.IssuedAt
		}
	}
	if issued.IsZero() || !issued.Before(p.ValidUntil) {
		return 0, false
	}
	return p.ValidUntil.Sub(issued), true
}

// ResolveEndpoint returns the endpoint the auth token is valid for: the
// stored Endpoint if set, else the one decoded from the token.
func (p Pair) ResolveEndpoint() (string, error) {
	if p.Endpoint != "" {
		return p.Endpoint, nil
	}
	info, err := ParseAuthToken(p.AuthToken)
	if err != nil {
		return "", err
	}
	if info.Endpoint == "" {
		return "", fmt.Errorf("provider: the auth token (%s) does not name an endpoint: store one with the record's \"endpoint\" field: %w", info.Form, ErrInvalidToken)
	}
	return info.Endpoint, nil
}

// CheckEndpoint returns nil if the pair's auth token is valid for endpoint,
// and an *EndpointMismatchError naming both endpoints if it is not.
func (p Pair) CheckEndpoint(endpoint string) error {
	have, err := p.ResolveEndpoint()
	if err != nil {
		return fmt.Errorf("provider: cannot check the credential against endpoint %q: %w", endpoint, err)
	}
	if !sameHost(have, endpoint) {
		return &EndpointMismatchError{Want: endpoint, Have: have}
	}
	return nil
}

// String describes the pair without revealing either token.
func (p Pair) String() string {
	until := "never"
	if !p.Never() {
		until = p.ValidUntil.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("Pair{generation: %d, endpoint: %q, validUntil: %s, tokens: redacted}", p.Generation, p.Endpoint, until)
}

// GoString is String, so %#v redacts too.
func (p Pair) GoString() string { return p.String() }

// Format prints String for every verb, so no fmt verb can reveal a token.
// (fmt cannot call methods on a Pair held in an unexported struct field;
// never format such a struct.)
func (p Pair) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// MarshalJSON encodes the pair's public fields only; the stored form with
// its tokens is Record.Encode.
func (p Pair) MarshalJSON() ([]byte, error) {
	v := struct {
		Generation uint64 `json:"generation"`
		Endpoint   string `json:"endpoint,omitempty"`
		ValidUntil string `json:"validUntil"`
		Tokens     string `json:"tokens"`
	}{p.Generation, p.Endpoint, "never", "redacted"}
	if !p.Never() {
		v.ValidUntil = p.ValidUntil.UTC().Format(time.RFC3339)
	}
	return json.Marshal(v)
}

// LogValue makes slog print the pair's public fields only.
func (p Pair) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Uint64("generation", p.Generation)}
	if p.Endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", p.Endpoint))
	}
	if p.Never() {
		attrs = append(attrs, slog.String("valid_until", "never"))
	} else {
		attrs = append(attrs, slog.Time("valid_until", p.ValidUntil))
	}
	return slog.GroupValue(attrs...)
}

// Fingerprint returns a short, non-reversible identifier of a token for
// logs and diagnostics: the first 8 hex digits of its SHA-256.
func Fingerprint(token string) string {
	if token == "" {
		return "(empty)"
	}
	return fingerprint(token)
}
