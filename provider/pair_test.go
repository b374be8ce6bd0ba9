package provider_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

func TestPairNeverAndRemaining(t *testing.T) {
	now := t2026
	tests := []struct {
		name      string
		pair      provider.Pair
		wantNever bool
		want      time.Duration
	}{
		{"never", provider.Pair{AuthToken: "k"}, true, time.Duration(math.MaxInt64)},
		{"one hour left", provider.Pair{ValidUntil: now.Add(time.Hour)}, false, time.Hour},
		{"expires now", provider.Pair{ValidUntil: now}, false, 0},
		{"expired a minute ago", provider.Pair{ValidUntil: now.Add(-time.Minute)}, false, -time.Minute},
		{"epoch", provider.Pair{ValidUntil: time.Unix(0, 0)}, false, now.Sub(time.Unix(0, 0)) * -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pair.Never(); got != tt.wantNever {
				t.Errorf("Never() = %v, want %v", got, tt.wantNever)
			}
			if got := tt.pair.Remaining(now); got != tt.want {
				t.Errorf("Remaining(now) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPairValidFor(t *testing.T) {
	now := t2026
	tests := []struct {
		name string
		pair provider.Pair
		min  time.Duration
		want bool
	}{
		{"never, no minimum", provider.Pair{}, 0, true},
		{"never, huge minimum", provider.Pair{}, time.Duration(math.MaxInt64), true},
		{"plenty left", provider.Pair{ValidUntil: now.Add(time.Hour)}, 5 * time.Minute, true},
		{"exactly the minimum left", provider.Pair{ValidUntil: now.Add(5 * time.Minute)}, 5 * time.Minute, true},
		{"a nanosecond short", provider.Pair{ValidUntil: now.Add(5*time.Minute - 1)}, 5 * time.Minute, false},
		{"expires now, no minimum", provider.Pair{ValidUntil: now}, 0, true},
		{"expired, no minimum", provider.Pair{ValidUntil: now.Add(-time.Second)}, 0, false},
		{"expired, negative minimum", provider.Pair{ValidUntil: now.Add(-time.Second)}, -time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pair.ValidFor(now, tt.min); got != tt.want {
				t.Errorf("ValidFor(now, %v) = %v, want %v (remaining %v)", tt.min, got, tt.want, tt.pair.Remaining(now))
			}
		})
	}
}

func TestPairResolveEndpoint(t *testing.T) {
	v1 := makeV1(makeJWT(`{"exp":1767225600}`), "cell-x.example.com")
	legacy := makeJWT(`{"c":"cache.cell-1.example.com","cp":"control.cell-1.example.com"}`)
	tests := []struct {
		name    string
		pair    provider.Pair
		want    string
		wantErr bool
	}{
		{"stored endpoint wins over token", provider.Pair{AuthToken: v1, Endpoint: "cell-stored.example.com"}, "cell-stored.example.com", false},
		{"stored endpoint with opaque token", provider.Pair{AuthToken: "opaque-SECRET-apikey-7f3a", Endpoint: "cell-stored.example.com"}, "cell-stored.example.com", false},
		{"stored endpoint with empty token", provider.Pair{Endpoint: "cell-stored.example.com"}, "cell-stored.example.com", false},
		{"decoded from v1", provider.Pair{AuthToken: v1}, "cell-x.example.com", false},
		{"decoded from legacy JWT", provider.Pair{AuthToken: legacy}, "cell-1.example.com", false},
		{"opaque token", provider.Pair{AuthToken: "opaque-SECRET-apikey-7f3a"}, "", true},
		{"v2 JWT without host", provider.Pair{AuthToken: makeJWT(`{"t":"g","sub":"SECRET-apikey-7f3a"}`)}, "", true},
		{"malformed JWT", provider.Pair{AuthToken: "a.SECRET!apikey-7f3a.c"}, "", true},
		{"empty token", provider.Pair{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.pair.ResolveEndpoint()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ResolveEndpoint = %q, want an error", got)
				}
				if !errors.Is(err, provider.ErrInvalidToken) {
					t.Errorf("error %q does not wrap ErrInvalidToken", err)
				}
				checkNoLeak(t, err, tt.pair.AuthToken, "apikey-7f3a")
				return
			}
			if err != nil {
				t.Fatalf("ResolveEndpoint: %v", err)
			}
			if got != tt.want {
				t.Errorf("ResolveEndpoint = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPairCheckEndpoint(t *testing.T) {
	legacy := makeJWT(`{"c":"cache.cell-1.example.com","cp":"control.cell-1.example.com"}`)
	v1 := makeV1(makeJWT(`{}`), "cell-x.example.com")
	tests := []struct {
		name     string
		pair     provider.Pair
		endpoint string
		wantHave string // empty: no mismatch expected
	}{
		{"same host", provider.Pair{AuthToken: legacy}, "cell-1.example.com", ""},
		{"case differs", provider.Pair{AuthToken: legacy}, "CELL-1.Example.COM", ""},
		{"trailing dot", provider.Pair{AuthToken: legacy}, "cell-1.example.com.", ""},
		{"control prefix", provider.Pair{AuthToken: legacy}, "control.cell-1.example.com", ""},
		{"cache prefix", provider.Pair{AuthToken: legacy}, "cache.cell-1.example.com", ""},
		{"token prefix", provider.Pair{AuthToken: legacy}, "token.cell-1.example.com", ""},
		{"storage prefix", provider.Pair{AuthToken: legacy}, "storage.cell-1.example.com", ""},
		{"prefix, case and dot together", provider.Pair{AuthToken: legacy}, "Control.CELL-1.example.com.", ""},
		{"v1 key", provider.Pair{AuthToken: v1}, "cell-x.example.com", ""},
		{"stored endpoint with prefix", provider.Pair{AuthToken: "opaque", Endpoint: "control.cell-2.example.com"}, "cell-2.example.com", ""},
		{"different cell", provider.Pair{AuthToken: legacy}, "cell-2.example.com", "cell-1.example.com"},
		{"different domain", provider.Pair{AuthToken: v1}, "cell-x.example.org", "cell-x.example.com"},
		{"suffix only", provider.Pair{AuthToken: v1}, "x.example.com", "cell-x.example.com"},
		{"empty wanted endpoint", provider.Pair{AuthToken: v1}, "", "cell-x.example.com"},
		{"stored endpoint mismatch", provider.Pair{AuthToken: legacy, Endpoint: "cell-9.example.com"}, "cell-1.example.com", "cell-9.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pair.CheckEndpoint(tt.endpoint)
			if tt.wantHave == "" {
				if err != nil {
					t.Errorf("CheckEndpoint(%q) = %v, want nil", tt.endpoint, err)
				}
				return
			}
			var mm *provider.EndpointMismatchError
			if !errors.As(err, &mm) {
				t.Fatalf("CheckEndpoint(%q) = %v, want *EndpointMismatchError", tt.endpoint, err)
			}
			if mm.Want != tt.endpoint || mm.Have != tt.wantHave {
				t.Errorf("mismatch Want, Have = %q, %q; want %q, %q", mm.Want, mm.Have, tt.endpoint, tt.wantHave)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", tt.endpoint)) || !strings.Contains(msg, fmt.Sprintf("%q", tt.wantHave)) {
				t.Errorf("error %q does not name both %q and %q", msg, tt.endpoint, tt.wantHave)
			}
			checkNoLeak(t, err, tt.pair.AuthToken)
		})
	}

	// A token that names no endpoint cannot be checked: that is an
	// ErrInvalidToken, not a mismatch, and it names the wanted endpoint.
	err := provider.Pair{AuthToken: "opaque-SECRET-apikey-7f3a"}.CheckEndpoint("cell-1.example.com")
	var mm *provider.EndpointMismatchError
	switch {
	case err == nil:
		t.Fatal("CheckEndpoint of an opaque token = nil, want an error")
	case errors.As(err, &mm):
		t.Errorf("CheckEndpoint of an opaque token = %v, want no *EndpointMismatchError", err)
	case !errors.Is(err, provider.ErrInvalidToken):
		t.Errorf("CheckEndpoint of an opaque token = %v, want ErrInvalidToken", err)
	case !strings.Contains(err.Error(), "cell-1.example.com"):
		t.Errorf("error %q does not name the wanted endpoint", err)
	}
	checkNoLeak(t, err, "opaque-SECRET-apikey-7f3a")
}

func secretPair() provider.Pair {
	return provider.Pair{
		AuthToken:    secretAPIKey,
		RefreshToken: secretRefresh,
		ValidUntil:   t2026,
		Endpoint:     "cell-1.example.com",
		Generation:   3,
	}
}

type holder struct {
	Name string
	P    provider.Pair
}

type ptrHolder struct {
	P *provider.Pair
}

func TestPairRedactedByFmt(t *testing.T) {
	p := secretPair()
	never := provider.Pair{AuthToken: secretAPIKey}
	values := []struct {
		name string
		v    any
	}{
		{"Pair", p},
		{"*Pair", &p},
		{"never Pair", never},
		{"struct with Pair", holder{Name: "h", P: p}},
		{"*struct with Pair", &holder{Name: "h", P: p}},
		{"struct with *Pair", ptrHolder{P: &p}},
		{"[]Pair", []provider.Pair{p, never}},
		{"map of Pair", map[string]provider.Pair{"a": p}},
		{"*Record", &provider.Record{Pair: p, Lease: &provider.Lease{Holder: "h"}}},
		{"Record", provider.Record{Pair: p}},
		{"any slice", []any{p, &p}},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"}
	for _, val := range values {
		for _, verb := range verbs {
			t.Run(val.name+" "+verb, func(t *testing.T) {
				got := fmt.Sprintf(verb, val.v)
				for _, s := range []string{secretAPIKey, secretRefresh, secretMarker, fmt.Sprintf("%x", secretMarker), fmt.Sprintf("%X", secretMarker)} {
					if strings.Contains(got, s) {
						t.Errorf("Sprintf(%s, %s) = %q contains %q", verb, val.name, got, s)
					}
				}
			})
		}
	}
	// fmt.Print and Println use %v too.
	if got := fmt.Sprint(p, holder{P: p}) + fmt.Sprintln(&p); strings.Contains(got, secretMarker) {
		t.Errorf("Sprint leaked a token: %q", got)
	}
}

func TestPairString(t *testing.T) {
	tests := []struct {
		name string
		pair provider.Pair
		want []string
	}{
		{"expiring", secretPair(), []string{"generation: 3", `endpoint: "cell-1.example.com"`, "validUntil: 2026-01-01T00:00:00Z", "redacted"}},
		{"never", provider.Pair{AuthToken: secretAPIKey}, []string{"generation: 0", "validUntil: never", "redacted"}},
		{"non-UTC validUntil printed in UTC", provider.Pair{AuthToken: "k", ValidUntil: t2026.In(time.FixedZone("X", 5*3600))}, []string{"2026-01-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.pair.String()
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("String() = %q, want it to contain %q", s, w)
				}
			}
			if strings.Contains(s, secretMarker) {
				t.Errorf("String() = %q leaks a token", s)
			}
			if g := tt.pair.GoString(); g != s {
				t.Errorf("GoString() = %q, want String() %q", g, s)
			}
		})
	}
}

func TestPairLogValue(t *testing.T) {
	p := secretPair()
	never := provider.Pair{AuthToken: secretAPIKey}
	log := func(h func(*bytes.Buffer) slog.Handler, args ...any) string {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("credential", args...)
		return buf.String()
	}
	jsonH := func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }
	textH := func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }

	t.Run("JSON fields", func(t *testing.T) {
		out := log(jsonH, "pair", p, "ptr", &p, "never", never)
		if strings.Contains(out, secretMarker) {
			t.Fatalf("JSON log leaks a token: %s", out)
		}
		var rec struct {
			Pair struct {
				Generation uint64    `json:"generation"`
				Endpoint   string    `json:"endpoint"`
				ValidUntil time.Time `json:"valid_until"`
			} `json:"pair"`
			Ptr   map[string]any `json:"ptr"`
			Never map[string]any `json:"never"`
		}
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, out)
		}
		if rec.Pair.Generation != 3 || rec.Pair.Endpoint != "cell-1.example.com" || !rec.Pair.ValidUntil.Equal(t2026) {
			t.Errorf("logged pair = %+v, want generation 3, endpoint cell-1.example.com, valid_until %v", rec.Pair, t2026)
		}
		if rec.Ptr["generation"] != float64(3) {
			t.Errorf("logged *Pair = %v, want the same group as Pair", rec.Ptr)
		}
		if rec.Never["valid_until"] != "never" {
			t.Errorf("logged never pair = %v, want valid_until never", rec.Never)
		}
		if _, ok := rec.Never["endpoint"]; ok {
			t.Errorf("logged never pair = %v, want no endpoint attribute when empty", rec.Never)
		}
	})
	t.Run("JSON group and With", func(t *testing.T) {
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, nil)).With("pair", p).WithGroup("g")
		l.Info("m", "pair", p, slog.Group("inner", "pair", &p))
		l.Error("m", "err", fmt.Errorf("refresh %v: %w", p, provider.ErrRefreshRejected))
		if out := buf.String(); strings.Contains(out, secretMarker) {
			t.Errorf("JSON log leaks a token: %s", out)
		}
	})
	t.Run("text handler", func(t *testing.T) {
		out := log(textH, "pair", p, "never", never, "holder", holder{P: p}, "slice", []provider.Pair{p})
		if strings.Contains(out, secretMarker) {
			t.Errorf("text log leaks a token: %s", out)
		}
		for _, w := range []string{"pair.generation=3", "pair.endpoint=cell-1.example.com", "never.valid_until=never"} {
			if !strings.Contains(out, w) {
				t.Errorf("text log %q lacks %q", out, w)
			}
		}
	})
}

func TestFingerprint(t *testing.T) {
	tests := []struct{ token, want string }{
		{"", "(empty)"},
		{"abc", "ba7816bf"}, // SHA-256("abc") = ba7816bf8f01cfea...
		{secretAPIKey, ""},
		{secretRefresh, ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got := provider.Fingerprint(tt.token)
			if tt.want != "" && got != tt.want {
				t.Errorf("Fingerprint(%q) = %q, want %q", tt.token, got, tt.want)
			}
			if tt.token != "" {
				if len(got) != 8 || strings.Trim(got, "0123456789abcdef") != "" {
					t.Errorf("Fingerprint(%q) = %q, want 8 lowercase hex digits", tt.token, got)
				}
				if strings.Contains(got, tt.token) || strings.Contains(tt.token, got) {
					t.Errorf("Fingerprint(%q) = %q reveals the token", tt.token, got)
				}
				if other, dup := seen[got]; dup {
					t.Errorf("Fingerprint(%q) = Fingerprint(%q) = %q", tt.token, other, got)
				}
				seen[got] = tt.token
			}
			if again := provider.Fingerprint(tt.token); again != got {
				t.Errorf("Fingerprint not deterministic: %q then %q", got, again)
			}
		})
	}
}
