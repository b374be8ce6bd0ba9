package provider_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Distinctive secret values: no error text or log line may ever contain
// them, nor the marker they share.
const (
	secretAPIKey  = "SECRET-apikey-7f3a"
	secretRefresh = "SECRET-refresh-91bc"
	secretMarker  = "SECRET"
)

// b64url is unpadded base64url, as JWT segments use.
func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// makeJWT builds an unsigned-looking JWT by hand: header.payload.signature.
func makeJWT(payload string) string {
	return b64url(`{"alg":"HS256","typ":"JWT"}`) + "." + b64url(payload) + "." + b64url("not-a-real-signature")
}

// makeV1 builds a Momento v1 key: standard base64 of {"api_key", "endpoint"}.
func makeV1(apiKey, endpoint string) string {
	b, err := json.Marshal(map[string]string{"api_key": apiKey, "endpoint": endpoint})
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// checkNoLeak fails the test if err's text contains any of the given secret
// values, the shared secret marker, or spans more than one line.
func checkNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range append(secrets, secretMarker) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error text %q contains secret %q", msg, s)
		}
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error text %q spans more than one line", msg)
	}
}

// samePair compares pairs, times by instant.
func samePair(a, b provider.Pair) bool {
	return a.AuthToken == b.AuthToken && a.RefreshToken == b.RefreshToken &&
		a.ValidUntil.Equal(b.ValidUntil) && a.Endpoint == b.Endpoint && a.Generation == b.Generation
}

func sameLease(a, b *provider.Lease) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Holder == b.Holder && a.Expires.Equal(b.Expires) && a.Generation == b.Generation
}

func sameBroken(a, b *provider.Broken) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameJSON reports whether two JSON texts denote the same value; numbers
// compare by their literal text, so big integers are not rounded.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(mustJSONValue(t, a), mustJSONValue(t, b))
}

func mustJSONValue(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return v
}

// topLevel decodes a JSON object into its raw fields.
func topLevel(t *testing.T, data []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, data)
	}
	return m
}

func isInvalidRecord(err error) bool { return errors.Is(err, provider.ErrInvalidRecord) }

// t2026 is 2026-01-01T00:00:00Z.
var t2026 = time.Unix(1767225600, 0)
