package env_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/env"
	"github.com/credhelper/credhelper/backendtest"
	"github.com/credhelper/credhelper/provider"
)

// fakeEnv is a concurrency-safe environment for the suite.
type fakeEnv struct {
	mu   sync.Mutex
	vars map[string]string
}

func (f *fakeEnv) lookup(k string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vars[k]
	return v, ok
}

func (f *fakeEnv) set(k, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vars[k] = v
}

func TestConformance(t *testing.T) {
	fe := &fakeEnv{vars: map[string]string{}}
	var n atomic.Int64
	backendtest.Run(t, backendtest.Config{
		ReadOnly: true,
		New: func(testing.TB) provider.Backend {
			return env.New(func(o *env.Options) { o.LookupEnv = fe.lookup })
		},
		Key:  func(testing.TB) string { return fmt.Sprintf("CRED%d", n.Add(1)) },
		Seed: func(_ testing.TB, key string, v []byte) { fe.set(key, string(v)) },
	})
}

func TestSeparateVariables(t *testing.T) {
	t.Setenv("MOMENTO_API_KEY", "key-abc")
	t.Setenv("MOMENTO_REFRESH_TOKEN", "refresh-abc")
	t.Setenv("MOMENTO_VALID_UNTIL", "4102444800")
	t.Setenv("MOMENTO_ENDPOINT", "cell-1.example.com")
	e, err := env.New().Load(context.Background(), "MOMENTO")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(e.Value)
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Pair{AuthToken: "key-abc", RefreshToken: "refresh-abc", ValidUntil: time.Unix(4102444800, 0), Endpoint: "cell-1.example.com"}
	if rec.Pair != want {
		t.Fatalf("pair = %+v, want %+v", rec.Pair, want)
	}
}

func TestBadVariables(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want error
	}{
		{"missing", map[string]string{}, provider.ErrNotFound},
		{"bad valid until", map[string]string{"P_API_KEY": "k", "P_REFRESH_TOKEN": "r", "P_VALID_UNTIL": "tomorrow"}, provider.ErrInvalidRecord},
		{"negative valid until", map[string]string{"P_API_KEY": "k", "P_REFRESH_TOKEN": "r", "P_VALID_UNTIL": "-5"}, provider.ErrInvalidRecord},
		{"expiring without refresh token", map[string]string{"P_API_KEY": "k", "P_VALID_UNTIL": "4102444800"}, provider.ErrInvalidRecord},
		{"bad json", map[string]string{"P": `{"apiKey": 12}`}, provider.ErrInvalidRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := env.New(func(o *env.Options) {
				o.LookupEnv = func(k string) (string, bool) { v, ok := tt.vars[k]; return v, ok }
			})
			_, err := b.Load(context.Background(), "P")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "tomorrow") {
				t.Errorf("error echoes a variable's value: %v", err)
			}
		})
	}
}

// TestExpiryFromTokenWhenUnset: an unset _VALID_UNTIL is not "never" when
// the API key is a JWT that says when it expires.
func TestExpiryFromTokenWhenUnset(t *testing.T) {
	enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	jwt := enc(`{"alg":"none"}`) + "." + enc(`{"exp":4102444800,"iat":4102441200}`) + ".sig"
	t.Setenv("APP_API_KEY", jwt)
	t.Setenv("APP_REFRESH_TOKEN", "refresh-abc")
	e, err := env.New().Load(context.Background(), "APP")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(e.Value)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(4102444800, 0); !rec.Pair.ValidUntil.Equal(want) {
		t.Fatalf("validUntil = %v, want the token's exp %v", rec.Pair.ValidUntil, want)
	}
}

// TestUnknownExpiryRefused: a refresh token with neither _VALID_UNTIL nor
// an exp in the API key is an expiring pair of unknown lifetime, refused
// rather than taken for "never"; a trailing newline (from $(cat file)) is
// trimmed from the tokens.
func TestUnknownExpiryRefused(t *testing.T) {
	t.Setenv("OPQ_API_KEY", "opaque-access-token\n")
	t.Setenv("OPQ_REFRESH_TOKEN", "refresh-abc\n")
	_, err := env.New().Load(context.Background(), "OPQ")
	if !errors.Is(err, provider.ErrInvalidRecord) || !strings.Contains(err.Error(), "$OPQ_VALID_UNTIL") {
		t.Fatalf("err = %v, want a refusal naming $OPQ_VALID_UNTIL", err)
	}
	t.Setenv("OPQ_VALID_UNTIL", "4102444800\n")
	e, err := env.New().Load(context.Background(), "OPQ")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := provider.DecodeRecord(e.Value)
	if rec.Pair.AuthToken != "opaque-access-token" || rec.Pair.RefreshToken != "refresh-abc" {
		t.Errorf("tokens not trimmed of their newline")
	}
}
