package face

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/credhelper/credhelper/provider"
)

// Resolver returns the current pair of a named profile. It must be safe for
// concurrent use; errors it returns must not contain a secret.
type Resolver interface {
	Credential(ctx context.Context, profile string) (provider.Pair, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, profile string) (provider.Pair, error)

// Credential calls f(ctx, profile).
func (f ResolverFunc) Credential(ctx context.Context, profile string) (provider.Pair, error) {
	return f(ctx, profile)
}

// Refresher is implemented by Resolvers that can force one refresh of a
// profile, for a tool that reports its token was rejected. Refresh returns
// the new pair, or the newer one another instance already committed.
type Refresher interface {
	Refresh(ctx context.Context, profile string) (provider.Pair, error)
}

// ErrTooLarge reports a request over its protocol's limit.
var ErrTooLarge = errors.New("request too large")

// ReadAll reads all of r, refusing more than limit bytes; what names the
// input in the error ("standard input").
func ReadAll(r io.Reader, limit int, what string) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is over %d bytes: %w", what, limit, ErrTooLarge)
	}
	return b, nil
}

// CacheOptions configure the faces whose tools cache a token: they tell the
// tool to stop caching MinValidity before the token expires.
type CacheOptions struct {
	// MinValidity returns a profile's minimum validity; default one minute
	// for every profile.
	MinValidity func(profile string) time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Apply returns o with defaults filled in, after running optFns on it.
func (o CacheOptions) Apply(optFns ...func(*CacheOptions)) CacheOptions {
	for _, fn := range optFns {
		fn(&o)
	}
	if o.MinValidity == nil {
		o.MinValidity = func(string) time.Duration { return time.Minute }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// CacheFor is how long the tool may cache profile's pair p: CacheFor at
// o.Now() with the profile's minimum validity.
func (o CacheOptions) CacheFor(p provider.Pair, profile string) time.Duration {
	return CacheFor(p, o.Now(), o.MinValidity(profile))
}

// Expiry is profile's Expiry with the profile's minimum validity.
func (o CacheOptions) Expiry(p provider.Pair, profile string) time.Time {
	return Expiry(p, o.MinValidity(profile))
}

// Expiry is the expiry every face tells its tool for p's token: minValidity
// before the token expires, so that the tool asks again while the token is
// still usable. It is the zero Time for a pair that never expires.
func Expiry(p provider.Pair, minValidity time.Duration) time.Time {
	if p.Never() {
		return time.Time{}
	}
	return p.ValidUntil.Add(-minValidity)
}

// CacheFor is how long a tool that caches may keep p's token: until
// minValidity before it expires, so that the tool asks again while the
// token is still usable. It is 0 (do not cache) once that moment has
// passed, and negative for a pair that never expires.
func CacheFor(p provider.Pair, now time.Time, minValidity time.Duration) time.Duration {
	if p.Never() {
		return -1
	}
	return max(Expiry(p, minValidity).Sub(now), 0)
}

// Token returns p's auth token, or an error naming the profile when it is
// empty (no protocol hands out an empty credential as a success) or not
// valid UTF-8 (JSON, which most protocols speak, would alter it).
func Token(p provider.Pair, profile string) (string, error) {
	if p.AuthToken == "" {
		return "", fmt.Errorf("profile %q has an empty auth token: store a pair with 'credhelper put --profile %s'", profile, profile)
	}
	if !utf8.ValidString(p.AuthToken) {
		return "", fmt.Errorf("profile %q: the auth token is not valid UTF-8 and cannot be passed on", profile)
	}
	return p.AuthToken, nil
}

// EntryError is a configured entry a face cannot use: what is wrong and
// what to write instead, without the entry's value (the caller names it).
type EntryError struct {
	// Why says what is wrong.
	Why string
	// Instead is a value to write in its place; empty if none is known.
	Instead string
}

func (e *EntryError) Error() string {
	if e.Instead == "" {
		return e.Why
	}
	return fmt.Sprintf("%s: write %q", e.Why, e.Instead)
}

// HostOf returns the host (with :port if any) of raw when raw is written
// as a URL (scheme://host/...), for a message suggesting the host alone.
func HostOf(raw string) (string, bool) {
	if !strings.Contains(raw, "://") {
		return "", false
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", false
	}
	return strings.ToLower(u.Host), true
}
