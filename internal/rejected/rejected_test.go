package rejected

import (
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

func TestShouldRefresh(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		p    provider.Pair
		want bool
	}{
		{"never expires", provider.Pair{AuthToken: "t"}, false},
		{"issue time unknown", provider.Pair{AuthToken: "t", ValidUntil: now.Add(time.Hour)}, true},
		{"issued just now", provider.Pair{AuthToken: "t", IssuedAt: now.Add(-5 * time.Second), ValidUntil: now.Add(time.Hour)}, false},
		{"issued a while ago", provider.Pair{AuthToken: "t", IssuedAt: now.Add(-Settle), ValidUntil: now.Add(time.Hour)}, true},
	} {
		if got := ShouldRefresh(tc.p, now); got != tc.want {
			t.Errorf("%s: ShouldRefresh = %v, want %v", tc.name, got, tc.want)
		}
	}
}
