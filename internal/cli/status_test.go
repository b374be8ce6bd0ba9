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
