//go:build unix

package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// TestStatusCallsLargeTokensOpaque: a token too large for the decoder is
// an opaque token (legitimate for OAuth2), not an undecodable one.
func TestStatusCallsLargeTokensOpaque(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct{ token, want string }{
		{strings.Repeat("a", 20<<10), "opaque token (over 16 KiB, not decoded)"},
		{"plain-opaque", "opaque token"},
		{"x.y.z", "undecodable"},
	} {
		s := statusOf(provider.Pair{AuthToken: tt.token, ValidUntil: now.Add(time.Hour)}, nil, now)
		if s.TokenForm != tt.want {
			t.Errorf("token of %d bytes: form %q, want %q", len(tt.token), s.TokenForm, tt.want)
		}
	}
}

// TestStatusSaysWhichTokenExpired: an expired auth token whose refresh
// token is still good says the next get refreshes it; one whose refresh
// token expired too says so; time left says how long ago, not a negative
// duration.
func TestStatusSaysWhichTokenExpired(t *testing.T) {
	now := time.Now()
	oauth := provider.RefreshPolicy{RefreshAfterExpiry: true}
	for _, tt := range []struct {
		name          string
		refreshUntil  time.Time
		status, spent string
	}{
		{"refresh token good", now.Add(24 * time.Hour), "auth token expired; the next get refreshes it", "expired 1m40s ago"},
		{"refresh token expired", now.Add(-time.Minute), "EXPIRED, and so is its refresh token", "expired 1m40s ago"},
	} {
		p := provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: now.Add(-100 * time.Second), RefreshValidUntil: tt.refreshUntil}
		var b strings.Builder
		if err := writeStatus(&b, "k", statusOf(p, nil, now).withPolicy(oauth, now), false); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, "status:       "+tt.status) || !strings.Contains(out, "time left:    none: "+tt.spent) {
			t.Errorf("%s:\n%s", tt.name, out)
		}
	}
}
