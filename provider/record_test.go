package provider_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// TestDecodeRecordRotationFormat decodes records exactly as Momento's
// Secrets Manager rotation tooling writes them: three fields, no
// generation, possibly pretty-printed.
func TestDecodeRecordRotationFormat(t *testing.T) {
	apiKey := makeV1(makeJWT(`{"sub":"svc","exp":1767225600}`), "cell-x.example.com")
	tests := []struct {
		name string
		in   string
		want provider.Pair
	}{
		{
			name: "compact",
			in:   `{"apiKey":"` + apiKey + `","refreshToken":"rt-0123456789","validUntil":1767225600}`,
			want: provider.Pair{AuthToken: apiKey, RefreshToken: "rt-0123456789", ValidUntil: t2026},
		},
		{
			name: "pretty printed, other key order",
			in:   "{\n  \"validUntil\": 1767225600,\n  \"refreshToken\": \"rt-0123456789\",\n  \"apiKey\": \"" + apiKey + "\"\n}\n",
			want: provider.Pair{AuthToken: apiKey, RefreshToken: "rt-0123456789", ValidUntil: t2026},
		},
		{
			name: "never expiring without refresh token",
			in:   `{"apiKey":"` + apiKey + `","validUntil":0}`,
			want: provider.Pair{AuthToken: apiKey},
		},
		{
			name: "never expiring with empty refresh token",
			in:   `{"apiKey":"` + apiKey + `","refreshToken":"","validUntil":0}`,
			want: provider.Pair{AuthToken: apiKey},
		},
		{
			name: "never expiring with null refresh token",
			in:   `{"apiKey":"` + apiKey + `","refreshToken":null,"validUntil":0}`,
			want: provider.Pair{AuthToken: apiKey},
		},
		{
			name: "whole-number float validUntil",
			in:   `{"apiKey":"k","refreshToken":"r","validUntil":1767225600.0}`,
			want: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026},
		},
		{
			name: "exponent validUntil",
			in:   `{"apiKey":"k","refreshToken":"r","validUntil":1.7672256e9}`,
			want: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026},
		},
		{
			name: "endpoint and generation",
			in:   `{"apiKey":"k","refreshToken":"r","validUntil":1767225600,"endpoint":"cell-1.example.com","generation":42}`,
			want: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Endpoint: "cell-1.example.com", Generation: 42},
		},
		{
			name: "null optional fields",
			in:   `{"apiKey":"k","refreshToken":"r","validUntil":1767225600,"endpoint":null,"generation":null,"lease":null,"lineageBroken":null}`,
			want: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026},
		},
		{
			name: "last second of year 9999",
			in:   `{"apiKey":"k","refreshToken":"r","validUntil":253402300799}`,
			want: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: time.Unix(253402300799, 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := provider.DecodeRecord([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if !samePair(rec.Pair, tt.want) {
				t.Errorf("Pair = %+v (auth %q, refresh %q), want %+v", rec.Pair, rec.Pair.AuthToken, rec.Pair.RefreshToken, tt.want)
			}
			if rec.Lease != nil || rec.Broken != nil {
				t.Errorf("Lease = %+v, Broken = %+v, want both nil", rec.Lease, rec.Broken)
			}
			for _, k := range []string{"apiKey", "refreshToken", "validUntil", "endpoint", "generation", "lease", "lineageBroken"} {
				if raw, ok := rec.Extra(k); ok {
					t.Errorf("known field %q kept as extra %s", k, raw)
				}
			}
		})
	}
}

// TestEncodeRotationCompatible checks that what credhelper writes is still
// readable by tooling that knows only the three rotation fields.
func TestEncodeRotationCompatible(t *testing.T) {
	in := `{"apiKey":"k-1","refreshToken":"r-1","validUntil":1767225600}`
	rec, err := provider.DecodeRecord([]byte(in))
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	out, err := rec.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	var got struct {
		APIKey       string `json:"apiKey"`
		RefreshToken string `json:"refreshToken"`
		ValidUntil   int64  `json:"validUntil"`
		Generation   uint64 `json:"generation"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("Encode output is not JSON: %v: %s", err, out)
	}
	if got.APIKey != "k-1" || got.RefreshToken != "r-1" || got.ValidUntil != 1767225600 || got.Generation != 0 {
		t.Errorf("Encode = %s, want apiKey k-1, refreshToken r-1, validUntil 1767225600, generation 0", out)
	}
	fields := topLevel(t, out)
	for _, absent := range []string{"endpoint", "lease", "lineageBroken"} {
		if raw, ok := fields[absent]; ok {
			t.Errorf("Encode wrote %q = %s for a record without it", absent, raw)
		}
	}
	// Never-expiring pairs are written as validUntil 0.
	never := &provider.Record{Pair: provider.Pair{AuthToken: "k"}}
	out, err = never.Encode()
	if err != nil {
		t.Fatalf("Encode never-expiring: %v", err)
	}
	if got := string(topLevel(t, out)["validUntil"]); got != "0" {
		t.Errorf("never-expiring validUntil = %s, want 0", got)
	}
}

func TestRecordPreservesUnknownFields(t *testing.T) {
	extras := map[string]string{
		"nested":   `{"a":[1,2,{"b":null,"c":[]}],"d":{"e":{"f":"deep"}}}`,
		"array":    `[true,false,null,"x",1.5,-0,{"k":"v"}]`,
		"big":      `12345678901234567890`,
		"bigger":   `123456789012345678901234567890123456789`,
		"float":    `1.25e-7`,
		"negative": `-42`,
		"unicode":  `"日本語 🚀 é \u00e9 \u2028 \ud83d\ude80"`,
		"html":     `"<b>&amp;</b>"`,
		"empty":    `{}`,
		"emptyArr": `[]`,
		"null":     `null`,
		"bool":     `false`,
		"string":   `"rotation-lambda-v2"`,
		"ключ":     `"unicode key"`,
	}
	var b strings.Builder
	b.WriteString(`{"apiKey":"k","refreshToken":"r","validUntil":1767225600`)
	for k, v := range extras {
		kq, _ := json.Marshal(k)
		b.WriteString(",\n  " + string(kq) + " : " + v)
	}
	b.WriteString("}")
	in := []byte(b.String())

	rec, err := provider.DecodeRecord(in)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	out, err := rec.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	rec2, err := provider.DecodeRecord(out)
	if err != nil {
		t.Fatalf("DecodeRecord(Encode()): %v\n%s", err, out)
	}
	outFields := topLevel(t, out)
	for k, want := range extras {
		t.Run(k, func(t *testing.T) {
			got, ok := rec.Extra(k)
			if !ok {
				t.Fatalf("Extra(%q) missing after decode", k)
			}
			if !sameJSON(t, got, []byte(want)) {
				t.Errorf("Extra(%q) = %s, want %s", k, got, want)
			}
			written, ok := outFields[k]
			if !ok {
				t.Fatalf("Encode dropped %q: %s", k, out)
			}
			if !sameJSON(t, written, []byte(want)) {
				t.Errorf("Encode wrote %q = %s, want %s", k, written, want)
			}
			again, ok := rec2.Extra(k)
			if !ok || !sameJSON(t, again, []byte(want)) {
				t.Errorf("after round trip Extra(%q) = %s (present %v), want %s", k, again, ok, want)
			}
		})
	}
	// Big numbers must survive as their exact digits, not as float64.
	for _, lit := range []string{`"big":12345678901234567890`, `"bigger":123456789012345678901234567890123456789`} {
		if !bytes.Contains(out, []byte(lit)) {
			t.Errorf("Encode output lacks %s exactly: %s", lit, out)
		}
	}
	if len(outFields) != len(extras)+4 { // apiKey, refreshToken, validUntil, generation
		t.Errorf("Encode wrote %d fields, want %d: %s", len(outFields), len(extras)+4, out)
	}
	out2, err := rec2.Encode()
	if err != nil {
		t.Fatalf("second Encode: %v", err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("Encode is not stable across a round trip:\nfirst  %s\nsecond %s", out, out2)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  provider.Record
	}{
		{"minimal never", provider.Record{Pair: provider.Pair{AuthToken: "k"}}},
		{"expiring", provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026}}},
		{"generation", provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Generation: 7}}},
		{"large generation", provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Generation: 1 << 53}}},
		{"endpoint", provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Endpoint: "cell-1.example.com"}}},
		{"lease", provider.Record{
			Pair:  provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Generation: 7},
			Lease: &provider.Lease{Holder: "host-a/pid-12/8c1e", Expires: time.Unix(1767225660, 0), Generation: 7},
		}},
		{"lease expiring at epoch", provider.Record{
			Pair:  provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026},
			Lease: &provider.Lease{Holder: "h", Expires: time.Unix(0, 0)},
		}},
		{"broken lineage", provider.Record{
			Pair:   provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Generation: 9},
			Broken: &provider.Broken{Generation: 9, Reason: "refresh token rejected by issuer"},
		}},
		{"lease and broken", provider.Record{
			Pair:   provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Generation: 3},
			Lease:  &provider.Lease{Holder: "h", Expires: t2026, Generation: 3},
			Broken: &provider.Broken{Generation: 2},
		}},
		{"sub-second validUntil is truncated to seconds", provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026.Add(999 * time.Millisecond)}}},
		{"html characters in tokens", provider.Record{Pair: provider.Pair{AuthToken: "a<b>&c", RefreshToken: "r\"'\\", ValidUntil: t2026}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.rec.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := provider.DecodeRecord(out)
			if err != nil {
				t.Fatalf("DecodeRecord(%s): %v", out, err)
			}
			want := tt.rec.Pair
			want.ValidUntil = want.ValidUntil.Truncate(time.Second)
			if !samePair(got.Pair, want) {
				t.Errorf("Pair = %v, want %v", got.Pair, want)
			}
			if got.Pair.AuthToken != want.AuthToken || got.Pair.RefreshToken != want.RefreshToken {
				t.Errorf("tokens = %q, %q; want %q, %q", got.Pair.AuthToken, got.Pair.RefreshToken, want.AuthToken, want.RefreshToken)
			}
			if !sameLease(got.Lease, tt.rec.Lease) {
				t.Errorf("Lease = %+v, want %+v", got.Lease, tt.rec.Lease)
			}
			if !sameBroken(got.Broken, tt.rec.Broken) {
				t.Errorf("Broken = %+v, want %+v", got.Broken, tt.rec.Broken)
			}
			again, err := got.Encode()
			if err != nil {
				t.Fatalf("second Encode: %v", err)
			}
			if !bytes.Equal(out, again) {
				t.Errorf("Encode not stable:\nfirst  %s\nsecond %s", out, again)
			}
		})
	}
}

func TestDecodeRecordLeaseAndBroken(t *testing.T) {
	base := `"apiKey":"k","refreshToken":"r","validUntil":1767225600`
	rec, err := provider.DecodeRecord([]byte(`{` + base + `,"generation":4,"lease":{"holder":"h-1","expires":1767225660,"generation":4},"lineageBroken":{"generation":3,"reason":"rejected"}}`))
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	wantLease := &provider.Lease{Holder: "h-1", Expires: time.Unix(1767225660, 0), Generation: 4}
	if !sameLease(rec.Lease, wantLease) {
		t.Errorf("Lease = %+v, want %+v", rec.Lease, wantLease)
	}
	wantBroken := &provider.Broken{Generation: 3, Reason: "rejected"}
	if !sameBroken(rec.Broken, wantBroken) {
		t.Errorf("Broken = %+v, want %+v", rec.Broken, wantBroken)
	}
	// A lease without a generation means generation 0.
	rec, err = provider.DecodeRecord([]byte(`{` + base + `,"lease":{"holder":"h","expires":5}}`))
	if err != nil {
		t.Fatalf("DecodeRecord lease without generation: %v", err)
	}
	if want := (&provider.Lease{Holder: "h", Expires: time.Unix(5, 0)}); !sameLease(rec.Lease, want) {
		t.Errorf("Lease = %+v, want %+v", rec.Lease, want)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	const (
		ak = `"apiKey":"` + secretAPIKey + `"`
		rt = `"refreshToken":"` + secretRefresh + `"`
		vu = `"validUntil":1767225600`
	)
	good := `{` + ak + `,` + rt + `,` + vu + `}`
	tests := []struct {
		name string
		in   string
	}{
		// Not JSON at all, or not quite.
		{"empty", ``},
		{"whitespace only", " \n\t "},
		{"truncated", `{` + ak + `,` + rt},
		{"truncated inside secret", `{"apiKey":"SECRET-apikey-7f`},
		{"unquoted secret", `{"apiKey":SECRET-apikey-7f3a,` + rt + `,` + vu + `}`},
		{"single quotes", `{'apiKey':'` + secretAPIKey + `'}`},
		{"trailing comma", `{` + ak + `,` + rt + `,` + vu + `,}`},
		{"secret as key", `{"SECRET-apikey-7f3a"}`},
		{"comment", `// SECRET-apikey-7f3a` + "\n" + good},
		// Trailing data after a valid object.
		{"trailing word", good + ` SECRET-apikey-7f3a`},
		{"trailing object", good + `{"apiKey":"SECRET-apikey-7f3a"}`},
		{"trailing number", good + ` 1`},
		{"trailing string", good + ` "SECRET-apikey-7f3a"`},
		{"trailing brace", good + `}`},
		{"trailing bracket", good + `]`},
		{"trailing comma after object", good + `,`},
		// Valid JSON that is not an object.
		{"null", `null`},
		{"array", `[]`},
		{"array of record", `[` + good + `]`},
		{"array of secret", `["SECRET-apikey-7f3a"]`},
		{"string", `"SECRET-apikey-7f3a"`},
		{"number", `12345678901234567890`},
		{"bool", `true`},
		// Wrong types.
		{"apiKey number", `{"apiKey":12345,` + rt + `,` + vu + `}`},
		{"apiKey bool", `{"apiKey":true,` + rt + `,` + vu + `}`},
		{"apiKey array", `{"apiKey":["SECRET-apikey-7f3a"],` + rt + `,` + vu + `}`},
		{"apiKey object", `{"apiKey":{"v":"SECRET-apikey-7f3a"},` + rt + `,` + vu + `}`},
		{"refreshToken number", `{` + ak + `,"refreshToken":991,` + vu + `}`},
		{"refreshToken object", `{` + ak + `,"refreshToken":{"v":"SECRET-refresh-91bc"},` + vu + `}`},
		{"endpoint number", `{` + ak + `,` + rt + `,` + vu + `,"endpoint":443}`},
		{"validUntil word", `{` + ak + `,` + rt + `,"validUntil":"soon"}`},
		{"validUntil empty string", `{` + ak + `,` + rt + `,"validUntil":""}`},
		{"validUntil bool", `{` + ak + `,` + rt + `,"validUntil":true}`},
		{"validUntil object", `{` + ak + `,` + rt + `,"validUntil":{"s":1}}`},
		{"validUntil array", `{` + ak + `,` + rt + `,"validUntil":[1767225600]}`},
		{"validUntil fraction", `{` + ak + `,` + rt + `,"validUntil":1.5}`},
		{"validUntil large fraction", `{` + ak + `,` + rt + `,"validUntil":1767225600.5}`},
		{"validUntil negative", `{` + ak + `,` + rt + `,"validUntil":-1}`},
		{"validUntil negative fraction", `{` + ak + `,` + rt + `,"validUntil":-0.5}`},
		{"validUntil milliseconds", `{` + ak + `,` + rt + `,"validUntil":1767225600000}`},
		{"validUntil year 10000", `{` + ak + `,` + rt + `,"validUntil":253402300800}`},
		{"validUntil above uint64", `{` + ak + `,` + rt + `,"validUntil":18446744073709551616}`},
		{"validUntil huge exponent", `{` + ak + `,` + rt + `,"validUntil":1e400}`},
		{"validUntil 1e20", `{` + ak + `,` + rt + `,"validUntil":1e20}`},
		{"validUntil missing", `{` + ak + `,` + rt + `}`},
		{"validUntil null", `{` + ak + `,` + rt + `,"validUntil":null}`},
		{"generation negative", `{` + ak + `,` + rt + `,` + vu + `,"generation":-1}`},
		{"generation fraction", `{` + ak + `,` + rt + `,` + vu + `,"generation":1.5}`},
		{"generation word", `{` + ak + `,` + rt + `,` + vu + `,"generation":"next"}`},
		{"generation above int64", `{` + ak + `,` + rt + `,` + vu + `,"generation":18446744073709551615}`},
		// Missing or empty tokens.
		{"apiKey missing", `{` + rt + `,` + vu + `}`},
		{"apiKey empty", `{"apiKey":"",` + rt + `,` + vu + `}`},
		{"apiKey null", `{"apiKey":null,` + rt + `,` + vu + `}`},
		{"empty object", `{}`},
		{"expiring without refreshToken", `{` + ak + `,` + vu + `}`},
		{"expiring with empty refreshToken", `{` + ak + `,"refreshToken":"",` + vu + `}`},
		{"expiring with null refreshToken", `{` + ak + `,"refreshToken":null,` + vu + `}`},
		// Whitespace, control characters, bad text.
		{"apiKey with space", `{"apiKey":"SECRET apikey-7f3a",` + rt + `,` + vu + `}`},
		{"apiKey with tab", `{"apiKey":"SECRET\tapikey-7f3a",` + rt + `,` + vu + `}`},
		{"apiKey with newline", `{"apiKey":"SECRET-apikey-7f3a\n",` + rt + `,` + vu + `}`},
		{"apiKey with CR", `{"apiKey":"SECRET-apikey-7f3a\r",` + rt + `,` + vu + `}`},
		{"apiKey with NUL", `{"apiKey":"SECRET-apikey\u00007f3a",` + rt + `,` + vu + `}`},
		{"apiKey with DEL", `{"apiKey":"SECRET-apikey\u007f7f3a",` + rt + `,` + vu + `}`},
		{"apiKey with escape", `{"apiKey":"SECRET-apikey\u001b7f3a",` + rt + `,` + vu + `}`},
		{"apiKey only space", `{"apiKey":" ",` + rt + `,` + vu + `}`},
		{"apiKey lone surrogate", `{"apiKey":"SECRET-apikey\ud8007f3a",` + rt + `,` + vu + `}`},
		{"apiKey replacement character", `{"apiKey":"SECRET-apikey` + "\uFFFD" + `7f3a",` + rt + `,` + vu + `}`},
		{"apiKey invalid escape", `{"apiKey":"SECRET-apikey\x7f3a",` + rt + `,` + vu + `}`},
		{"refreshToken with space", `{` + ak + `,"refreshToken":"SECRET refresh-91bc",` + vu + `}`},
		{"refreshToken with newline", `{` + ak + `,"refreshToken":"SECRET-refresh-91bc\n",` + vu + `}`},
		{"endpoint with space", `{` + ak + `,` + rt + `,` + vu + `,"endpoint":"cell 1.example.com"}`},
		{"non-UTF-8 in apiKey", `{"apiKey":"SECRET-apikey-7f3a` + "\xff" + `",` + rt + `,` + vu + `}`},
		{"non-UTF-8 outside strings", "\xfe\xff" + good},
		{"UTF-16 text", "\xff\xfe{\x00\"\x00"},
		{"truncated UTF-8 in extra", `{` + ak + `,` + rt + `,` + vu + `,"x":"` + "\xe6\x97" + `"}`},
		// Lease and lineage markers.
		{"lease string", `{` + ak + `,` + rt + `,` + vu + `,"lease":"h"}`},
		{"lease array", `{` + ak + `,` + rt + `,` + vu + `,"lease":[]}`},
		{"lease without holder", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"expires":1767225660}}`},
		{"lease empty holder", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"","expires":1767225660}}`},
		{"lease holder number", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":7,"expires":1767225660}}`},
		{"lease holder with space", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"a b","expires":1767225660}}`},
		{"lease without expires", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"h"}}`},
		{"lease expires milliseconds", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"h","expires":1767225660000}}`},
		{"lease expires negative", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"h","expires":-1}}`},
		{"lease generation word", `{` + ak + `,` + rt + `,` + vu + `,"lease":{"holder":"h","expires":1,"generation":"x"}}`},
		{"lineageBroken string", `{` + ak + `,` + rt + `,` + vu + `,"lineageBroken":"yes"}`},
		{"lineageBroken generation negative", `{` + ak + `,` + rt + `,` + vu + `,"lineageBroken":{"generation":-2}}`},
		// Size.
		{"oversized", `{` + ak + `,` + rt + `,` + vu + `,"pad":"` + strings.Repeat("x", provider.MaxRecordSize) + `"}`},
		{"oversized garbage", strings.Repeat("SECRET-apikey-7f3a", provider.MaxRecordSize/16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := provider.DecodeRecord([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeRecord(%.200q) = %v, want an error", tt.in, rec.Pair)
			}
			if rec != nil {
				t.Errorf("DecodeRecord returned a record with its error: %v", rec.Pair)
			}
			if !isInvalidRecord(err) {
				t.Errorf("error %q does not wrap ErrInvalidRecord", err)
			}
			if !strings.HasPrefix(err.Error(), "provider: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			checkNoLeak(t, err, secretAPIKey, secretRefresh, "7f3a", "91bc", "apikey-7f", "soon", "next")
		})
	}
}

func TestDecodeRecordSizeLimit(t *testing.T) {
	head := `{"apiKey":"k","refreshToken":"r","validUntil":1767225600,"pad":"`
	tail := `"}`
	record := func(size int) []byte {
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}
	if _, err := provider.DecodeRecord(record(provider.MaxRecordSize)); err != nil {
		t.Errorf("DecodeRecord of exactly MaxRecordSize (%d) bytes: %v", provider.MaxRecordSize, err)
	}
	_, err := provider.DecodeRecord(record(provider.MaxRecordSize + 1))
	if !isInvalidRecord(err) {
		t.Errorf("DecodeRecord of MaxRecordSize+1 bytes: error %v, want ErrInvalidRecord", err)
	}
	// Encode refuses to write what DecodeRecord would refuse to read.
	big := &provider.Record{Pair: provider.Pair{AuthToken: "k"}}
	big.SetExtra("pad", json.RawMessage(`"`+strings.Repeat("x", provider.MaxRecordSize)+`"`))
	if _, err := big.Encode(); !isInvalidRecord(err) {
		t.Errorf("Encode of an oversized record: error %v, want ErrInvalidRecord", err)
	}
}

func TestEncodeValidation(t *testing.T) {
	tests := []struct {
		name string
		pair provider.Pair
	}{
		{"empty auth token", provider.Pair{RefreshToken: secretRefresh, ValidUntil: t2026}},
		{"expiring without refresh token", provider.Pair{AuthToken: secretAPIKey, ValidUntil: t2026}},
		{"validUntil at epoch", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh, ValidUntil: time.Unix(0, 0)}},
		{"validUntil before epoch", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh, ValidUntil: time.Unix(-5, 0)}},
		{"validUntil year 10000", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh, ValidUntil: time.Unix(253402300800, 0)}},
		{"auth token with space", provider.Pair{AuthToken: "SECRET apikey", RefreshToken: secretRefresh, ValidUntil: t2026}},
		{"auth token with newline", provider.Pair{AuthToken: secretAPIKey + "\n", RefreshToken: secretRefresh, ValidUntil: t2026}},
		{"refresh token with NUL", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh + "\x00", ValidUntil: t2026}},
		{"refresh token not UTF-8", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh + "\xff", ValidUntil: t2026}},
		{"endpoint with tab", provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh, ValidUntil: t2026, Endpoint: "cell\t1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.pair.Validate(); !isInvalidRecord(err) {
				t.Errorf("Validate: error %v, want ErrInvalidRecord", err)
			} else {
				checkNoLeak(t, err, secretAPIKey, secretRefresh)
			}
			rec := &provider.Record{Pair: tt.pair}
			out, err := rec.Encode()
			if err == nil {
				t.Fatalf("Encode = %s, want an error", out)
			}
			if !isInvalidRecord(err) {
				t.Errorf("Encode: error %q does not wrap ErrInvalidRecord", err)
			}
			checkNoLeak(t, err, secretAPIKey, secretRefresh)
		})
	}
	if err := (provider.Pair{AuthToken: "k"}).Validate(); err != nil {
		t.Errorf("Validate of a never-expiring pair without refresh token: %v", err)
	}
}

func TestRecordExtraAndClone(t *testing.T) {
	rec, err := provider.DecodeRecord([]byte(`{"apiKey":"k","refreshToken":"r","validUntil":1767225600,"lease":{"holder":"h","expires":9},"lineageBroken":{"generation":1},"note":"a"}`))
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if raw, ok := rec.Extra("missing"); ok {
		t.Errorf("Extra(missing) = %s, true; want false", raw)
	}
	c := rec.Clone()
	c.Pair.AuthToken = "k2"
	c.Lease.Holder = "other"
	c.Broken.Generation = 99
	c.SetExtra("note", json.RawMessage(`"b"`))
	c.SetExtra("added", json.RawMessage(`1`))
	if rec.Pair.AuthToken != "k" || rec.Lease.Holder != "h" || rec.Broken.Generation != 1 {
		t.Errorf("changing the clone changed the original: %v lease %+v broken %+v", rec.Pair, rec.Lease, rec.Broken)
	}
	if raw, _ := rec.Extra("note"); string(raw) != `"a"` {
		t.Errorf("original Extra(note) = %s after SetExtra on the clone, want \"a\"", raw)
	}
	if _, ok := rec.Extra("added"); ok {
		t.Error("SetExtra on the clone added a field to the original")
	}
	out, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode clone: %v", err)
	}
	f := topLevel(t, out)
	if string(f["note"]) != `"b"` || string(f["added"]) != `1` {
		t.Errorf("clone encoded note=%s added=%s, want \"b\" and 1", f["note"], f["added"])
	}

	// SetExtra on a zero Record works, and cannot override a known field.
	var z provider.Record
	z.Pair = provider.Pair{AuthToken: "real"}
	z.SetExtra("apiKey", json.RawMessage(`"spoofed"`))
	z.SetExtra("generation", json.RawMessage(`1000`))
	out, err = z.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	f = topLevel(t, out)
	if string(f["apiKey"]) != `"real"` || string(f["generation"]) != `0` {
		t.Errorf("known fields overridden by extras: apiKey=%s generation=%s", f["apiKey"], f["generation"])
	}
	// Clone of a record without lease, broken or extras.
	plain := (&provider.Record{Pair: provider.Pair{AuthToken: "k"}}).Clone()
	if plain.Lease != nil || plain.Broken != nil {
		t.Errorf("Clone invented lease %+v or broken %+v", plain.Lease, plain.Broken)
	}
}

func TestEncodeStableKeyOrder(t *testing.T) {
	rec := &provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: t2026, Endpoint: "e", Generation: 2}}
	for _, k := range []string{"zeta", "alpha", "mid", "Upper"} {
		rec.SetExtra(k, json.RawMessage(`1`))
	}
	first, err := rec.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	for i := 0; i < 20; i++ {
		got, err := rec.Clone().Encode()
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("Encode #%d = %s, want %s", i, got, first)
		}
	}
}

// TestGenerationLimit: a generation whose successor could not be stored is
// refused when read, so nothing is spent for it.
func TestGenerationLimit(t *testing.T) {
	_, err := provider.DecodeRecord([]byte(`{"apiKey":"a","refreshToken":"r","validUntil":4102444800,"generation":9223372036854775807}`))
	if !errors.Is(err, provider.ErrInvalidRecord) {
		t.Fatalf("err = %v, want ErrInvalidRecord", err)
	}
	if _, err := provider.DecodeRecord([]byte(`{"apiKey":"a","refreshToken":"r","validUntil":4102444800,"generation":9007199254740992}`)); err != nil {
		t.Fatalf("generation 2^53: %v", err)
	}
}
