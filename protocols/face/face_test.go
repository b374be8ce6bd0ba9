package face

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

func TestCacheFor(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		until time.Time
		want  time.Duration
	}{
		{time.Time{}, -1},
		{now.Add(time.Hour), time.Hour - time.Minute},
		{now.Add(time.Minute), 0},
		{now.Add(30 * time.Second), 0},
		{now.Add(-time.Hour), 0},
	} {
		if got := CacheFor(provider.Pair{ValidUntil: tc.until}, now, time.Minute); got != tc.want {
			t.Errorf("CacheFor(until %v) = %v, want %v", tc.until, got, tc.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	until := time.Unix(1_800_000_000, 0)
	if got := Expiry(provider.Pair{ValidUntil: until}, time.Minute); !got.Equal(until.Add(-time.Minute)) {
		t.Errorf("Expiry = %v", got)
	}
	if got := Expiry(provider.Pair{}, time.Minute); !got.IsZero() {
		t.Errorf("Expiry of a pair that never expires = %v", got)
	}
}

func TestToken(t *testing.T) {
	if tok, err := Token(provider.Pair{AuthToken: "t"}, "p"); err != nil || tok != "t" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	for _, bad := range []string{"", "secret\xff"} {
		_, err := Token(provider.Pair{AuthToken: bad}, "p")
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Token(%q) = %v", bad, err)
		}
	}
}

func TestReadAll(t *testing.T) {
	if b, err := ReadAll(strings.NewReader("abc"), 3, "stdin"); err != nil || string(b) != "abc" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("abcd"), 3, "stdin"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	if b, err := ReadAll(nil, 3, "stdin"); err != nil || b != nil {
		t.Errorf("nil reader: %q, %v", b, err)
	}
}
