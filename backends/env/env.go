package env

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Options configure a Backend.
type Options struct {
	// LookupEnv reads a variable; default os.LookupEnv. Tests inject a map.
	LookupEnv func(name string) (string, bool)
}

// Backend reads credentials from environment variables. It is safe for
// concurrent use.
type Backend struct {
	lookup func(string) (string, bool)
}

var (
	_ provider.Backend         = (*Backend)(nil)
	_ provider.ReadOnlyBackend = (*Backend)(nil)
)

// New returns an env Backend.
func New(optFns ...func(*Options)) *Backend {
	o := Options{LookupEnv: os.LookupEnv}
	for _, fn := range optFns {
		fn(&o)
	}
	return &Backend{lookup: o.LookupEnv}
}

// ReadOnly reports true: the environment cannot be written.
func (b *Backend) ReadOnly() bool { return true }

// Load assembles the record for prefix key from the environment.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	if err := ctx.Err(); err != nil {
		return provider.Entry{}, err
	}
	if key == "" || strings.ContainsAny(key, "= \x00") {
		return provider.Entry{}, fmt.Errorf("env: invalid variable prefix %q: use letters, digits and underscores", key)
	}
	value, err := b.record(key)
	if err != nil {
		return provider.Entry{}, err
	}
	sum := sha256.Sum256(value)
	return provider.Entry{Value: value, Version: provider.Version("sha256:" + hex.EncodeToString(sum[:16]))}, nil
}

func (b *Backend) record(prefix string) ([]byte, error) {
	if v, ok := b.lookup(prefix); ok && strings.HasPrefix(strings.TrimSpace(v), "{") {
		if _, err := provider.DecodeRecord([]byte(v)); err != nil {
			return nil, fmt.Errorf("env: $%s: %w", prefix, err)
		}
		return []byte(v), nil
	}
	key, ok := b.lookup(prefix + "_API_KEY")
	if !ok || key == "" {
		return nil, fmt.Errorf("env: neither $%s (JSON record) nor $%s_API_KEY is set: %w", prefix, prefix, provider.ErrNotFound)
	}
	key, err := provider.CleanSecret(key, "$"+prefix+"_API_KEY")
	if err != nil {
		return nil, fmt.Errorf("env: %w: %w", err, provider.ErrInvalidRecord)
	}
	p := provider.Pair{AuthToken: key}
	if rt, ok := b.lookup(prefix + "_REFRESH_TOKEN"); ok && rt != "" {
		if p.RefreshToken, err = provider.CleanSecret(rt, "$"+prefix+"_REFRESH_TOKEN"); err != nil {
			return nil, fmt.Errorf("env: %w: %w", err, provider.ErrInvalidRecord)
		}
	}
	p.Endpoint, _ = b.lookup(prefix + "_ENDPOINT")
	p.Endpoint = strings.TrimSpace(p.Endpoint)
	if s, _ := b.lookup(prefix + "_VALID_UNTIL"); strings.TrimSpace(s) != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("env: $%s_VALID_UNTIL must be epoch seconds (0 for never): %w", prefix, provider.ErrInvalidRecord)
		}
		if n > 0 {
			p.ValidUntil = time.Unix(n, 0)
		}
	} else if info, err := provider.ParseAuthToken(key); err == nil && !info.Expires.IsZero() {
		// Unset is not "never" when the token itself says when it expires.
		p.ValidUntil = info.Expires
	} else if p.RefreshToken != "" {
		// A refresh token means the pair expires; when is not known, and an
		// unknown lifetime is never taken for "never".
		return nil, fmt.Errorf("env: $%s_REFRESH_TOKEN is set but $%s_VALID_UNTIL is not, and the API key states no expiry: set $%s_VALID_UNTIL to the pair's expiry in epoch seconds: %w", prefix, prefix, prefix, provider.ErrInvalidRecord)
	}
	rec := &provider.Record{Pair: p}
	out, err := rec.Encode()
	if err != nil {
		return nil, fmt.Errorf("env: $%s_*: %w", prefix, err)
	}
	return out, nil
}

// CompareAndSwap always fails: the environment is read-only.
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	return "", fmt.Errorf("env: cannot store into environment variables ($%s): %w", key, provider.ErrReadOnly)
}
