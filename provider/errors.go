package provider

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Implementations wrap them with %w so callers can branch
// with errors.Is; none of them, nor any wrapper in this module, carries a
// secret in its text.
var (
	// ErrNotFound reports that a backend holds nothing under the key.
	ErrNotFound = errors.New("credential not found")
	// ErrConflict reports that a CompareAndSwap lost: the stored version is
	// no longer the expected one (or, for a create, the key exists).
	ErrConflict = errors.New("version conflict")
	// ErrReadOnly reports that a backend cannot be written.
	ErrReadOnly = errors.New("backend is read-only")
	// ErrRefreshRejected reports that the issuer refused the refresh token:
	// it is invalid, expired, revoked or already spent.
	ErrRefreshRejected = errors.New("refresh token rejected by issuer")
	// ErrLineageBroken reports that the chain of refresh tokens cannot be
	// continued; a person must store a new pair (credhelper generate or put).
	ErrLineageBroken = errors.New("refresh lineage broken")
	// ErrExpired reports a pair whose validity has run out.
	ErrExpired = errors.New("credential expired")
	// ErrInvalidRecord reports a stored or supplied record that does not
	// decode or fails validation.
	ErrInvalidRecord = errors.New("invalid credential record")
	// ErrInvalidToken reports an auth token that cannot be decoded where its
	// contents are needed.
	ErrInvalidToken = errors.New("invalid auth token")
	// ErrNotDelivered marks an issuer failure where the request certainly
	// never reached the issuer (connection refused, name resolution, TLS
	// handshake): the refresh token is unspent. Issuers wrap it together
	// with a TransientError.
	ErrNotDelivered = errors.New("request not delivered")
	// ErrUnsupported reports an optional capability an implementation lacks.
	ErrUnsupported = errors.New("operation not supported")
	// ErrNoIssuer reports a pair due for refresh where no issuer is
	// configured; it wraps ErrUnsupported.
	ErrNoIssuer = fmt.Errorf("no issuer configured: %w", ErrUnsupported)
	// ErrPermission reports access denied by a backend or issuer; it is
	// permanent until a person changes a policy.
	ErrPermission = errors.New("permission denied")
)

// TransientError marks a failure that may succeed when retried: throttling,
// timeouts, unavailability, 5xx. Everything not marked transient is
// permanent.
type TransientError struct {
	Err error
}

// Transient wraps err as a TransientError; a nil err stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

func (e *TransientError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *TransientError) Unwrap() error { return e.Err }

// IsTransient reports whether any error in err's chain is a TransientError.
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// EndpointMismatchError reports that a credential was requested for one
// endpoint but the stored auth token authorizes another.
type EndpointMismatchError struct {
	Want, Have string
}

func (e *EndpointMismatchError) Error() string {
	return fmt.Sprintf("provider: credential is valid for endpoint %q, not %q: use a profile whose key was issued for %q", e.Have, e.Want, e.Want)
}

// SanitizeMessage makes text from a server or another process fit for an
// error message: each of secrets is replaced with "[redacted]", invalid
// UTF-8 and control characters (newlines included) are replaced, and the
// result is cut to limit bytes on a character boundary (limit <= 0: none).
func SanitizeMessage(msg string, limit int, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = strings.ToValidUTF8(msg, "?")
	msg = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
	if limit <= 0 || len(msg) <= limit {
		return msg
	}
	cut := limit - len("...")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:max(cut, 0)] + "..."
}
