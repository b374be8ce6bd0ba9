package provider_test

// Failing tests for defects found while testing provider; NOT committed.
// Copy into provider/ to reproduce: go test -run Bug ./provider/

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// Bug 1: printable() lets Unicode whitespace and C1 controls through.
func TestRegressionUnicodeWhitespaceInTokens(t *testing.T) {
	for _, r := range []string{"\u0085", "\u00a0", "\u2028", "\u3000", "\u009b"} {
		in := `{"apiKey":"a` + r + `b","validUntil":0}`
		if _, err := provider.DecodeRecord([]byte(in)); err == nil {
			t.Errorf("DecodeRecord accepted apiKey with %U", []rune(r)[0])
		}
		if _, err := provider.ParseAuthToken("tok" + r + "en"); err == nil {
			t.Errorf("ParseAuthToken accepted token with %U", []rune(r)[0])
		}
	}
}

// Bug 2: fmt verbs other than v/s/q/x/X print the tokens.
func TestRegressionFmtVerbsLeak(t *testing.T) {
	p := provider.Pair{AuthToken: "SECRET-a", RefreshToken: "SECRET-r", ValidUntil: time.Unix(1767225600, 0)}
	for _, verb := range []string{"%d", "%t", "%o", "%e", "%b", "%c", "%U"} {
		if got := fmt.Sprintf(verb, p); strings.Contains(got, "SECRET") {
			t.Errorf("Sprintf(%s, pair) = %q", verb, got)
		}
	}
	// Unexported struct fields bypass String entirely (fmt cannot call
	// methods there); not fixable by Format alone.
	type wrapper struct{ p provider.Pair }
	if got := fmt.Sprintf("%v", wrapper{p}); strings.Contains(got, "SECRET") {
		t.Logf("known fmt limitation, unexported field: %q", got)
	}
}

// Bug 3: json.Marshal of a Pair, and so slog's JSON handler for any value
// that contains a Pair (struct, slice, map, *Record), prints the tokens.
func TestRegressionJSONLeaks(t *testing.T) {
	p := provider.Pair{AuthToken: "SECRET-a", RefreshToken: "SECRET-r"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m",
		"holder", struct{ P provider.Pair }{p},
		"slice", []provider.Pair{p},
		"record", &provider.Record{Pair: p})
	if strings.Contains(buf.String(), "SECRET") {
		t.Errorf("slog JSON leaks tokens: %s", buf.String())
	}
	if b, _ := json.Marshal(p); bytes.Contains(b, []byte("SECRET")) {
		t.Errorf("json.Marshal(pair) = %s", b)
	}
}

// Bug 4: Encode writes leases DecodeRecord refuses, making the credential
// unreadable for everyone.
func TestRegressionEncodeUndecodableLease(t *testing.T) {
	for name, l := range map[string]*provider.Lease{
		"zero Expires": {Holder: "h"},
		"empty Holder": {Expires: time.Unix(1767225600, 0)},
		"Holder space": {Holder: "a b", Expires: time.Unix(1767225600, 0)},
	} {
		rec := &provider.Record{Pair: provider.Pair{AuthToken: "k", RefreshToken: "r", ValidUntil: time.Unix(1767225600, 0)}, Lease: l}
		out, err := rec.Encode()
		if err != nil {
			continue // refusing to encode is the fix
		}
		if _, err := provider.DecodeRecord(out); err != nil {
			t.Errorf("%s: Encode wrote %s, which DecodeRecord rejects: %v", name, out, err)
		}
	}
	// Same for a generation above MaxInt64.
	rec := &provider.Record{Pair: provider.Pair{AuthToken: "k", Generation: 1 << 63}}
	if out, err := rec.Encode(); err == nil {
		if _, err := provider.DecodeRecord(out); err != nil {
			t.Errorf("generation 1<<63: Encode wrote %s, which DecodeRecord rejects: %v", out, err)
		}
	}
}

// Question 5: numeric strings are accepted where numbers are required,
// because json.Number unmarshals from a JSON string.
