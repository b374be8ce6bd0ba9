package provider_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/credhelper/credhelper/provider"
)

// leakMinLen is the shortest input the fuzz targets look for in error text.
// Every fixed phrase in the package's messages is broken by a space at
// least every 15 bytes, so a run of 16 or more bytes without whitespace
// that shows up in an error came from the input.
const leakMinLen = 16

// leakCandidate reports whether s is long enough and free of whitespace,
// so that finding it in an error message means the input leaked. All-digit
// strings are excluded: messages quote sizes and out-of-range numbers.
func leakCandidate(s string) bool {
	if len(s) < leakMinLen || strings.Trim(s, "0123456789") == "" {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsSpace)
}

func checkFuzzError(t *testing.T, err error, sentinel error, inputs ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error %q spans more than one line", msg)
	}
	for _, in := range inputs {
		if leakCandidate(in) && strings.Contains(msg, in) {
			t.Fatalf("error %q contains input %q", msg, in)
		}
	}
}

// recordSecrets returns the string values of the token fields of data, if
// data is a JSON object, so the fuzz target can look for them in errors.
func recordSecrets(data []byte) []string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return nil
	}
	var out []string
	for _, k := range []string{"apiKey", "refreshToken"} {
		var s string
		if json.Unmarshal(fields[k], &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

func FuzzDecodeRecord(f *testing.F) {
	for _, seed := range []string{
		`{"apiKey":"k","refreshToken":"r","validUntil":1767225600}`,
		`{"apiKey":"k","validUntil":0}`,
		`{"apiKey":"k","refreshToken":"r","validUntil":1767225600,"endpoint":"cell-1.example.com","generation":3,"lease":{"holder":"h","expires":1767225660,"generation":3},"lineageBroken":{"generation":2,"reason":"x"},"extra":{"n":[1,12345678901234567890,"ü"]}}`,
		`{"apiKey":"SECRET-apikey-7f3a0123","refreshToken":"SECRET-refresh-91bc","validUntil":"soon"}`,
		`{"apiKey":"k","refreshToken":"r","validUntil":1.7672256e9,"x":"<&>"}`,
		`[{"apiKey":"k"}]`,
		`{"apiKey":"k","validUntil":0}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := provider.DecodeRecord(data)
		if err != nil {
			if rec != nil {
				t.Fatalf("DecodeRecord returned a record with error %v", err)
			}
			checkFuzzError(t, err, provider.ErrInvalidRecord, append(recordSecrets(data), string(data))...)
			return
		}
		enc, err := rec.Encode()
		if err != nil {
			// Only the size limit can refuse a record that decoded: HTML
			// escaping and added fields may grow it past MaxRecordSize.
			checkFuzzError(t, err, provider.ErrInvalidRecord, rec.Pair.AuthToken, rec.Pair.RefreshToken)
			if len(data) < provider.MaxRecordSize/8 {
				t.Fatalf("Encode of a decoded %d-byte record: %v", len(data), err)
			}
			return
		}
		rec2, err := provider.DecodeRecord(enc)
		if err != nil {
			t.Fatalf("DecodeRecord(Encode(DecodeRecord(%q))) = %v\nencoded: %s", data, err, enc)
		}
		if !samePair(rec.Pair, rec2.Pair) {
			t.Fatalf("Pair changed across a round trip: %v (%q, %q) then %v (%q, %q)",
				rec.Pair, rec.Pair.AuthToken, rec.Pair.RefreshToken, rec2.Pair, rec2.Pair.AuthToken, rec2.Pair.RefreshToken)
		}
		if !sameLease(rec.Lease, rec2.Lease) {
			t.Fatalf("Lease changed across a round trip: %+v then %+v", rec.Lease, rec2.Lease)
		}
		if !sameBroken(rec.Broken, rec2.Broken) {
			t.Fatalf("Broken changed across a round trip: %+v then %+v", rec.Broken, rec2.Broken)
		}
		known := map[string]bool{"apiKey": true, "refreshToken": true, "validUntil": true, "endpoint": true, "generation": true, "lease": true, "lineageBroken": true}
		for k := range topLevel(t, enc) {
			if known[k] {
				continue
			}
			a, ok1 := rec.Extra(k)
			b, ok2 := rec2.Extra(k)
			if !ok1 || !ok2 || !sameJSON(t, a, b) {
				t.Fatalf("extra %q changed across a round trip: %s (%v) then %s (%v)", k, a, ok1, b, ok2)
			}
		}
		enc2, err := rec2.Encode()
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode not stable:\nfirst  %s\nsecond %s", enc, enc2)
		}
	})
}

func FuzzParseAuthToken(f *testing.F) {
	for _, seed := range []string{
		makeV1(makeJWT(`{"exp":1767225600}`), "cell-x.example.com"),
		makeJWT(`{"c":"cache.cell-1.example.com","cp":"control.cell-1.example.com","exp":1767225600}`),
		makeJWT(`{"t":"g","iat":1764547200}`),
		"ya29.a0AfH6SMBx-Zq_random",
		"eyJhbGciOiJIUzI1NiJ9.SECRET!!payload-7f3a.sig",
		"",
		"e30=",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		info, err := provider.ParseAuthToken(tok)
		if err != nil {
			if info != (provider.TokenInfo{}) {
				t.Fatalf("ParseAuthToken returned %+v with error %v", info, err)
			}
			checkFuzzError(t, err, provider.ErrInvalidToken, append(strings.Split(tok, "."), tok)...)
			return
		}
		switch info.Form {
		case provider.TokenOpaque:
			if info.Endpoint != "" || !info.Expires.IsZero() || !info.IssuedAt.IsZero() {
				t.Fatalf("opaque token with contents: %+v", info)
			}
		case provider.TokenV1:
			if info.Endpoint == "" {
				t.Fatalf("v1 key without endpoint: %+v", info)
			}
		case provider.TokenJWT:
		default:
			t.Fatalf("unknown form %q", info.Form)
		}
		// ResolveEndpoint and CheckEndpoint agree with ParseAuthToken.
		p := provider.Pair{AuthToken: tok}
		ep, err := p.ResolveEndpoint()
		if info.Endpoint == "" {
			if err == nil {
				t.Fatalf("ResolveEndpoint = %q for a token without endpoint", ep)
			}
			checkFuzzError(t, err, provider.ErrInvalidToken, append(strings.Split(tok, "."), tok)...)
			return
		}
		if err != nil || ep != info.Endpoint {
			t.Fatalf("ResolveEndpoint = %q, %v; want %q", ep, err, info.Endpoint)
		}
		if err := p.CheckEndpoint(info.Endpoint); err != nil {
			t.Fatalf("CheckEndpoint(own endpoint %q) = %v", info.Endpoint, err)
		}
	})
}
