package envexec

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

func TestShellQuoteRoundTrip(t *testing.T) {
	values := []string{"", "plain", "it's", "'", "''", `a\b`, "$HOME `id` $(id)", "two\nlines", "tab\there", "ünïcode", `"dq"`, "!bang", "*"}
	var script bytes.Buffer
	vars := make([]Var, len(values))
	for i, v := range values {
		vars[i] = Var{Name: "V" + string(rune('A'+i)), Value: v}
	}
	if err := Write(&script, FormatShell, vars); err != nil {
		t.Fatal(err)
	}
	for i, v := range vars {
		// The script runs in sh, then prints one variable.
		out, err := exec.Command("sh", "-c", script.String()+`printf %s "$`+v.Name+`"`).Output()
		if err != nil {
			t.Fatalf("sh: %v\n%s", err, script.String())
		}
		if string(out) != values[i] {
			t.Errorf("%s: sh read %q, want %q", v.Name, out, values[i])
		}
	}
	if !strings.HasPrefix(script.String(), "export VA=''\nexport VB='plain'\nexport VC='it'\\''s'\n") {
		t.Errorf("script starts %q", script.String()[:40])
	}
}

func TestDotenvAndJSON(t *testing.T) {
	var b bytes.Buffer
	vars := []Var{{"A", `x"y\z`}, {"B", "plain"}}
	if err := Write(&b, FormatDotenv, vars); err != nil {
		t.Fatal(err)
	}
	if want := "A=\"x\\\"y\\\\z\"\nB=\"plain\"\n"; b.String() != want {
		t.Errorf("dotenv = %q, want %q", b.String(), want)
	}
	for _, bad := range []string{"a$b", "a\nb", "a`b"} {
		b.Reset()
		err := Write(&b, FormatDotenv, []Var{{"A", bad}})
		if err == nil || b.Len() != 0 || strings.Contains(err.Error(), bad) {
			t.Errorf("dotenv %q: %v, wrote %q", bad, err, b.String())
		}
	}
	b.Reset()
	if err := Write(&b, FormatJSON, vars); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["A"] != `x"y\z` || m["B"] != "plain" {
		t.Errorf("json %q: %v", b.String(), err)
	}
	if err := Write(&b, "yaml", vars); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestValues(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	p := provider.Pair{AuthToken: "tok", RefreshToken: "r", ValidUntil: exp, Endpoint: "cell-1.example.com"}
	got, err := Vars{Token: "T", Endpoint: "E", Expiry: "X"}.Values(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{{"T", "tok"}, {"E", "cell-1.example.com"}, {"X", "1900000000"}}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("got %v, want %v", got, want)
	}
	// An opaque token without a stored endpoint: no endpoint variable;
	// never expires: expiry "0".
	got, err = DefaultVars().Values(provider.Pair{AuthToken: "opaque"})
	if err != nil || len(got) != 1 || got[0] != (Var{DefaultTokenVar, "opaque"}) {
		t.Errorf("opaque: %v, %v", got, err)
	}
	got, _ = Vars{Token: "T", Expiry: "X"}.Values(provider.Pair{AuthToken: "t"})
	if len(got) != 2 || got[1].Value != "0" {
		t.Errorf("never: %v", got)
	}
	for _, v := range []Vars{{}, {Token: "1A"}, {Token: "A-B"}, {Token: "A", Endpoint: "A"}, {Token: "A", Expiry: "X Y"}} {
		if _, err := v.Values(p); err == nil {
			t.Errorf("%+v accepted", v)
		}
	}
	if _, err := DefaultVars().Values(provider.Pair{}); err == nil {
		t.Error("empty token accepted")
	}
}

func TestEnviron(t *testing.T) {
	got := Environ([]string{"A=1", "MOMENTO_API_KEY=old", "B=2", "MOMENTO_API_KEY_X=keep"}, []Var{{"MOMENTO_API_KEY", "new"}})
	want := "A=1 B=2 MOMENTO_API_KEY_X=keep MOMENTO_API_KEY=new"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
