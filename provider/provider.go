package provider

import (
	"context"
	"time"
)

// CredentialProvider supplies a current credential.
//
// Credential must be safe for concurrent use by multiple goroutines. It
// returns a Pair with at least the implementation's configured minimum
// validity left, or an error; never an expired or partial pair.
type CredentialProvider interface {
	Credential(ctx context.Context) (Pair, error)
}

// CredentialProviderFunc adapts a function to CredentialProvider.
type CredentialProviderFunc func(ctx context.Context) (Pair, error)

// Credential calls f(ctx).
func (f CredentialProviderFunc) Credential(ctx context.Context) (Pair, error) { return f(ctx) }

// Version identifies one stored value of a key in a Backend. It is opaque to
// callers; only equality matters. The zero Version means "absent".
type Version string

// Entry is a stored value and its version.
type Entry struct {
	Value   []byte
	Version Version
}

// Backend stores opaque bytes under a key, with compare-and-swap.
//
// Implementations must be safe for concurrent use, and CompareAndSwap must be
// atomic against every other writer on every host. Transient failures are
// wrapped in a *TransientError; everything else is permanent.
type Backend interface {
	// Load returns the current value and version of key, or an error
	// wrapping ErrNotFound.
	Load(ctx context.Context, key string) (Entry, error)
	// CompareAndSwap stores value under key only if the current version is
	// expected (the zero Version: only if the key is absent) and returns
	// the new version. Otherwise it returns an error wrapping ErrConflict.
	// Read-only backends return an error wrapping ErrReadOnly.
	CompareAndSwap(ctx context.Context, key string, expected Version, value []byte) (Version, error)
}

// ReadOnlyBackend is implemented by backends that can say up front that they
// cannot be written, so callers need not attempt a CompareAndSwap to learn it.
type ReadOnlyBackend interface {
	ReadOnly() bool
}

// WriteChecker is implemented by backends that can check, without writing,
// that the caller may write key. The refresh engine calls it before it spends
// a refresh token it could not store.
type WriteChecker interface {
	CheckWrite(ctx context.Context, key string) error
}

// Issuer exchanges a pair's refresh token for a new pair.
//
// Refresh spends pair.RefreshToken. It returns an error wrapping
// ErrRefreshRejected when the issuer says the token is invalid or already
// used; a *TransientError otherwise, additionally wrapping ErrNotDelivered
// when the request certainly never reached the issuer. The returned pair's
// Generation is ignored by callers.
type Issuer interface {
	Refresh(ctx context.Context, pair Pair) (Pair, error)
}

// RefreshPolicy describes how an issuer's tokens live, as far as the
// refresh engine must know it. The zero value is the conservative policy
// of an issuer that does not say (and Momento's): a refresh needs a
// still-valid auth token, and a rejected refresh leaves the current auth
// token usable until it expires.
type RefreshPolicy struct {
	// RefreshAfterExpiry reports that the refresh token alone authorizes a
	// refresh, so a pair whose auth token has expired can still be
	// refreshed until its refresh token expires (OAuth2, RFC 6749 section
	// 6). When false, a refresh authenticates with the current auth token
	// (Momento), so the lineage ends at ValidUntil.
	RefreshAfterExpiry bool
	// RejectionRevokesAuthToken reports that when a refresh is rejected
	// because a spent refresh token was presented again, the issuer also
	// revokes the auth tokens of that family (RFC 9700 section 4.14.2), so
	// a pair whose lineage broke must not be served any more.
	RejectionRevokesAuthToken bool
}

// RefreshPolicyIssuer is implemented by issuers that state their
// RefreshPolicy; other issuers get the zero RefreshPolicy.
type RefreshPolicyIssuer interface {
	RefreshPolicy() RefreshPolicy
}

// PolicyOf returns i's RefreshPolicy, or the zero policy if it states none.
func PolicyOf(i Issuer) RefreshPolicy {
	if p, ok := i.(RefreshPolicyIssuer); ok {
		return p.RefreshPolicy()
	}
	return RefreshPolicy{}
}

// Introspector is implemented by issuers that can tell, without spending
// it, whether a refresh token is still active (OAuth2 token introspection,
// RFC 7662). The refresh engine asks before it presents a token whose
// previous holder's lease expired: a token already spent means that holder
// got an answer, so presenting it again could only be refused (and revoke
// the family at servers with reuse detection).
type Introspector interface {
	// RefreshTokenActive reports whether pair's refresh token can still be
	// spent. It returns an error wrapping ErrUnsupported when this issuer
	// instance cannot tell (no introspection endpoint configured).
	RefreshTokenActive(ctx context.Context, pair Pair) (bool, error)
}

// Bootstrapper mints a first pair for a lineage that can no longer be
// continued: from a Momento session token, or by running a command that
// prints one. The refresh engine calls it, under a claim, when the lineage
// is found broken or its refresh token expired, so that a fleet heals
// itself instead of waiting for a person.
type Bootstrapper interface {
	Bootstrap(ctx context.Context) (Pair, error)
}

// BootstrapperFunc adapts a function to Bootstrapper.
type BootstrapperFunc func(ctx context.Context) (Pair, error)

// Bootstrap calls f(ctx).
func (f BootstrapperFunc) Bootstrap(ctx context.Context) (Pair, error) { return f(ctx) }

// Generator is implemented by issuers that can mint a first pair.
type Generator interface {
	Generate(ctx context.Context, req GenerateRequest) (Pair, error)
}

// GenerateRequest asks an issuer for a first pair.
type GenerateRequest struct {
	// SessionToken authenticates the request (a Momento session token).
	SessionToken string
	// Lifetime is how long the pair lives; ignored when Never is set.
	Lifetime time.Duration
	// Never asks for a pair that never expires.
	Never bool
	// Description is a free-form note stored by the issuer, if it can.
	Description string
	// Scope restricts what the token may do. Empty means super-user.
	Scope Scope
}

// Scope restricts a generated token. The zero Scope is super-user.
type Scope struct {
	// Caches and Topics name what the token may access; empty means all.
	Caches []string
	// ReadOnly limits the token to reads.
	ReadOnly bool
}
