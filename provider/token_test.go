package provider_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

func TestParseAuthToken(t *testing.T) {
	innerJWT := makeJWT(`{"sub":"svc","exp":1767225600,"iat":1764547200}`)
	tests := []struct {
		name string
		tok  string
		want provider.TokenInfo
	}{
		{
			name: "v1 key with inner JWT",
			tok:  makeV1(innerJWT, "cell-x.example.com"),
			want: provider.TokenInfo{Form: provider.TokenV1, Endpoint: "cell-x.example.com", Expires: t2026, IssuedAt: time.Unix(1764547200, 0)},
		},
		{
			name: "v1 key with never-expiring inner JWT",
			tok:  makeV1(makeJWT(`{"sub":"svc"}`), "cell-x.example.com"),
			want: provider.TokenInfo{Form: provider.TokenV1, Endpoint: "cell-x.example.com"},
		},
		{
			name: "v1 key with opaque inner key",
			tok:  makeV1("opaque-inner-key", "cell-y.example.com"),
			want: provider.TokenInfo{Form: provider.TokenV1, Endpoint: "cell-y.example.com"},
		},
		{
			name: "v1 key with extra fields",
			tok:  base64.StdEncoding.EncodeToString([]byte(`{"api_key":"` + innerJWT + `","endpoint":"cell-x.example.com","version":1}`)),
			want: provider.TokenInfo{Form: provider.TokenV1, Endpoint: "cell-x.example.com", Expires: t2026, IssuedAt: time.Unix(1764547200, 0)},
		},
		{
			name: "legacy JWT with c and cp",
			tok:  makeJWT(`{"sub":"u","c":"cache.cell-1.example.com","cp":"control.cell-1.example.com","exp":1767225600}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Endpoint: "cell-1.example.com", Expires: t2026},
		},
		{
			name: "legacy JWT with c only",
			tok:  makeJWT(`{"c":"cache.cell-1.example.com"}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Endpoint: "cell-1.example.com"},
		},
		{
			name: "legacy JWT with cp only",
			tok:  makeJWT(`{"cp":"control.cell-2.example.com"}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Endpoint: "cell-2.example.com"},
		},
		{
			name: "JWT with endpoint claim wins over hosts",
			tok:  makeJWT(`{"endpoint":"cell-3.example.com","cp":"control.cell-9.example.com","c":"cache.cell-9.example.com"}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Endpoint: "cell-3.example.com"},
		},
		{
			name: "JWT with exp only",
			tok:  makeJWT(`{"sub":"u","exp":1767225600}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Expires: t2026},
		},
		{
			name: "JWT with fractional exp",
			tok:  makeJWT(`{"exp":1767225600.75}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Expires: t2026},
		},
		{
			name: "JWT with exponent exp",
			tok:  makeJWT(`{"exp":1.7672256e9}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Expires: t2026},
		},
		{
			name: "v2 JWT without host",
			tok:  makeJWT(`{"t":"g","id":"abc","exp":1767225600}`),
			want: provider.TokenInfo{Form: provider.TokenJWT, Expires: t2026},
		},
		{
			name: "JWT with padded payload",
			tok:  b64url(`{"alg":"none"}`) + "." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1767225600}`)) + ".",
			want: provider.TokenInfo{Form: provider.TokenJWT, Expires: t2026},
		},
		{
			name: "JWT with empty claims",
			tok:  makeJWT(`{}`),
			want: provider.TokenInfo{Form: provider.TokenJWT},
		},
		{name: "OAuth token with one dot", tok: "ya29.a0AfH6SMBx-Zq_random-TOKEN_value0123456789", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "random alphanumeric", tok: "Xk3p9QvL2mN8rT5wY7zA1bC4dE6fG0hJ", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "hex", tok: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "GitHub style", tok: "gho_16C7e42F292c6912E7710c838347Ae178B4a", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "many dots", tok: "a.b.c.d", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "base64 of non-JSON", tok: base64.StdEncoding.EncodeToString([]byte("hello world")), want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "base64url of JSON is not v1", tok: base64.RawURLEncoding.EncodeToString([]byte(`{"api_key":"a?>","endpoint":"e"}`)), want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "single character", tok: "x", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "unicode", tok: "tøkén-ключ", want: provider.TokenInfo{Form: provider.TokenOpaque}},
		{name: "exactly the size limit", tok: strings.Repeat("A", 16<<10), want: provider.TokenInfo{Form: provider.TokenOpaque}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := provider.ParseAuthToken(tt.tok)
			if err != nil {
				t.Fatalf("ParseAuthToken: %v", err)
			}
			if got.Form != tt.want.Form || got.Endpoint != tt.want.Endpoint || !got.Expires.Equal(tt.want.Expires) || !got.IssuedAt.Equal(tt.want.IssuedAt) {
				t.Errorf("ParseAuthToken = %+v, want %+v", got, tt.want)
			}
			if tt.want.Expires.IsZero() && !got.Expires.IsZero() {
				t.Errorf("Expires = %v, want zero", got.Expires)
			}
		})
	}
}

func TestParseAuthTokenErrors(t *testing.T) {
	hdr := b64url(`{"alg":"HS256","typ":"JWT"}`)
	std := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		tok  string
	}{
		{"empty", ""},
		{"space", " "},
		{"tab", "\t"},
		{"newline", "\n"},
		{"leading space", " " + makeJWT(`{"secret":"SECRET-claim"}`)},
		{"trailing newline", makeV1("SECRET-inner", "e.example.com") + "\n"},
		{"embedded space", "SECRET apikey-7f3a"},
		{"embedded NUL", "SECRET-apikey\x007f3a"},
		{"DEL", "SECRET-apikey\x7f7f3a"},
		{"not UTF-8", "SECRET-apikey-7f3a\xff\xfe"},
		{"huge", strings.Repeat("SECRET-", (16<<10)/7+1)},
		{"huge JWT", makeJWT(`{"pad":"` + strings.Repeat("SECRET", 4000) + `"}`)},
		{"two dots only", ".."},
		{"JWT with empty payload", hdr + "..sig"},
		{"JWT payload bad base64", hdr + ".SECRET!!payload*7f3a.sig"},
		{"JWT payload standard base64 with plus", hdr + "." + "SECRET+apikey/7f3a" + ".sig"},
		{"JWT payload not JSON", hdr + "." + b64url("SECRET-apikey-7f3a not json") + ".sig"},
		{"JWT payload truncated JSON", hdr + "." + b64url(`{"exp":1767225600,"sub":"SECRET-apikey-7f3a`) + ".sig"},
		{"JWT payload array", makeJWT(`["SECRET-apikey-7f3a"]`)},
		{"JWT payload string", makeJWT(`"SECRET-apikey-7f3a"`)},
		{"JWT payload null", makeJWT(`null`)},
		{"JWT payload number", makeJWT(`17672256007f3a`)},
		{"exp word", makeJWT(`{"exp":"SECRET-apikey-7f3a"}`)},
		{"exp bool", makeJWT(`{"exp":true}`)},
		{"exp object", makeJWT(`{"exp":{"v":"SECRET-apikey-7f3a"}}`)},
		{"exp array", makeJWT(`{"exp":[1767225600]}`)},
		{"exp negative", makeJWT(`{"exp":-1}`)},
		{"exp milliseconds", makeJWT(`{"exp":1767225600000}`)},
		{"exp overflow", makeJWT(`{"exp":1e400}`)},
		{"iat word", makeJWT(`{"iat":"yesterday"}`)},
		{"c number", makeJWT(`{"c":5}`)},
		{"c empty", makeJWT(`{"c":""}`)},
		{"cp object", makeJWT(`{"cp":{"h":"SECRET-apikey-7f3a"}}`)},
		{"endpoint claim null", makeJWT(`{"endpoint":null}`)},
		{"v1 missing endpoint", std(`{"api_key":"SECRET-apikey-7f3a"}`)},
		{"v1 missing api_key", std(`{"endpoint":"cell-x.example.com"}`)},
		{"v1 empty object", std(`{}`)},
		{"v1 empty api_key", std(`{"api_key":"","endpoint":"cell-x.example.com"}`)},
		{"v1 empty endpoint", std(`{"api_key":"SECRET-apikey-7f3a","endpoint":""}`)},
		{"v1 api_key number", std(`{"api_key":7,"endpoint":"cell-x.example.com"}`)},
		{"v1 endpoint number", std(`{"api_key":"SECRET-apikey-7f3a","endpoint":443}`)},
		{"v1 truncated JSON", std(`{"api_key":"SECRET-apikey-7f3a`)},
		{"v1 trailing data", std(`{"api_key":"SECRET-apikey-7f3a","endpoint":"e"} x`)},
		{"v1 bad inner JWT", makeV1("a.SECRET!!7f3a.c", "cell-x.example.com")},
		{"v1 inner JWT with bad exp", makeV1(makeJWT(`{"exp":"SECRET-apikey-7f3a"}`), "cell-x.example.com")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := provider.ParseAuthToken(tt.tok)
			if err == nil {
				t.Fatalf("ParseAuthToken(%.100q) = %+v, want an error", tt.tok, got)
			}
			if !errors.Is(err, provider.ErrInvalidToken) {
				t.Errorf("error %q does not wrap ErrInvalidToken", err)
			}
			if got != (provider.TokenInfo{}) {
				t.Errorf("ParseAuthToken returned %+v with its error, want the zero TokenInfo", got)
			}
			if !strings.HasPrefix(err.Error(), "provider: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			secrets := []string{"7f3a", "apikey", "SECRET-inner", "SECRET-claim"}
			if len(tt.tok) >= 8 {
				secrets = append(secrets, tt.tok)
			}
			for _, part := range strings.Split(tt.tok, ".") {
				if len(part) >= 8 {
					secrets = append(secrets, part)
				}
			}
			checkNoLeak(t, err, secrets...)
		})
	}
}

// TestParseAuthTokenPrefixesTrimmedOnce checks that only the claim's own
// service prefix is removed from a legacy host.
func TestParseAuthTokenPrefixesTrimmedOnce(t *testing.T) {
	tests := []struct{ claims, want string }{
		{`{"c":"cache.control.cell.example.com"}`, "control.cell.example.com"},
		{`{"cp":"cache.cell.example.com"}`, "cache.cell.example.com"},
		{`{"c":"cell.example.com"}`, "cell.example.com"},
		{`{"endpoint":"control.cell.example.com"}`, "control.cell.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.claims, func(t *testing.T) {
			got, err := provider.ParseAuthToken(makeJWT(tt.claims))
			if err != nil {
				t.Fatalf("ParseAuthToken: %v", err)
			}
			if got.Endpoint != tt.want {
				t.Errorf("Endpoint = %q, want %q", got.Endpoint, tt.want)
			}
		})
	}
}
