package provider

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenForm names the shape of an auth token.
type TokenForm string

// Token forms ParseAuthToken recognises.
const (
	// TokenV1 is standard base64 of {"api_key": <jwt>, "endpoint": <host>}.
	TokenV1 TokenForm = "v1 key"
	// TokenJWT is a bare JWT (legacy Momento keys carry c/cp host claims).
	TokenJWT TokenForm = "JWT"
	// TokenOpaque is anything else, such as an opaque OAuth2 access token.
	TokenOpaque TokenForm = "opaque token"
)

// maxTokenSize bounds the token the decoder looks at.
const maxTokenSize = 16 << 10

// TokenInfo is what can be read from an auth token without verifying it.
type TokenInfo struct {
	Form TokenForm
	// Endpoint is the cell host the token is valid for, if it names one.
	Endpoint string
	// Expires is the JWT's exp claim; zero when absent.
	Expires time.Time
	// IssuedAt is the JWT's iat claim; zero when absent.
	IssuedAt time.Time
}

// ParseAuthToken decodes an auth token without verifying any signature (a
// client cannot). A v1 key or a JWT yields its endpoint and expiry; a token
// of neither shape is TokenOpaque, which is legitimate for OAuth2. A token
// that claims one of the two shapes but is malformed is an error wrapping
// ErrInvalidToken. It never panics and never puts token bytes in an error.
func ParseAuthToken(tok string) (TokenInfo, error) {
	if tok == "" {
		return TokenInfo{}, fmt.Errorf("provider: empty auth token: %w", ErrInvalidToken)
	}
	if len(tok) > maxTokenSize {
		return TokenInfo{}, fmt.Errorf("provider: auth token is %d bytes, over the %d-byte limit: %w", len(tok), maxTokenSize, ErrInvalidToken)
	}
	if !printable(tok) {
		return TokenInfo{}, fmt.Errorf("provider: auth token contains whitespace or control characters: %w", ErrInvalidToken)
	}
	if strings.Count(tok, ".") == 2 {
		return parseJWT(tok)
	}
	if raw, err := base64.StdEncoding.DecodeString(tok); err == nil && (bytes.HasPrefix(raw, []byte(`{"`)) || json.Valid(raw)) {
		return parseV1(raw)
	}
	return TokenInfo{Form: TokenOpaque}, nil
}

func parseV1(raw []byte) (TokenInfo, error) {
	var v struct {
		APIKey   *string `json:"api_key"`
		Endpoint *string `json:"endpoint"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return TokenInfo{}, fmt.Errorf("provider: auth token is base64 but not the v1 key JSON: %w", ErrInvalidToken)
	}
	if v.APIKey == nil || *v.APIKey == "" || v.Endpoint == nil || *v.Endpoint == "" {
		return TokenInfo{}, fmt.Errorf("provider: v1 key lacks \"api_key\" or \"endpoint\": %w", ErrInvalidToken)
	}
	info := TokenInfo{Form: TokenV1, Endpoint: *v.Endpoint}
	if strings.Count(*v.APIKey, ".") == 2 {
		inner, err := parseJWT(*v.APIKey)
		if err != nil {
			return TokenInfo{}, fmt.Errorf("provider: v1 key's inner JWT: %w", err)
		}
		info.Expires = inner.Expires
		info.IssuedAt = inner.IssuedAt
	}
	return info, nil
}

func parseJWT(tok string) (TokenInfo, error) {
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return TokenInfo{}, fmt.Errorf("provider: JWT payload is not base64url: %w", ErrInvalidToken)
	}
	var claims map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return TokenInfo{}, fmt.Errorf("provider: JWT payload is not a JSON object: %w", ErrInvalidToken)
	}
	info := TokenInfo{Form: TokenJWT}
	for name, dst := range map[string]*time.Time{"exp": &info.Expires, "iat": &info.IssuedAt} {
		raw, ok := claims[name]
		if !ok {
			continue
		}
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return TokenInfo{}, fmt.Errorf("provider: JWT %q claim is not a number: %w", name, ErrInvalidToken)
		}
		f, err := n.Float64()
		if err != nil || f < 0 || f > maxValidUntil {
			return TokenInfo{}, fmt.Errorf("provider: JWT %q claim out of range: %w", name, ErrInvalidToken)
		}
		*dst = time.Unix(int64(f), 0)
	}
	// Hosts: an explicit endpoint claim, else cp (control host) or c (cache
	// host) with their service prefix removed.
	for _, c := range []struct{ claim, prefix string }{{"endpoint", ""}, {"cp", "control."}, {"c", "cache."}} {
		raw, ok := claims[c.claim]
		if !ok {
			continue
		}
		var host string
		if json.Unmarshal(raw, &host) != nil || host == "" {
			return TokenInfo{}, fmt.Errorf("provider: JWT %q claim is not a host name: %w", c.claim, ErrInvalidToken)
		}
		info.Endpoint = strings.TrimPrefix(host, c.prefix)
		break
	}
	return info, nil
}

// sameHost compares endpoints case-insensitively, ignoring a trailing dot
// and a service prefix a user may have included.
func sameHost(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		for _, p := range []string{"control.", "cache.", "token.", "storage."} {
			s = strings.TrimPrefix(s, p)
		}
		return s
	}
	return norm(a) == norm(b)
}

func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

func asErr[T any](err error, target *T) bool { return errors.As(err, target) }
