package provider_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/provider"
)

// sentinels names every sentinel error of the package (TestSentinelsDistinct
// uses it too). TestEverySentinelHasAKind
// reads the package's source, so a sentinel added without a line here, or
// without a kind in the table, fails the test.
var sentinels = map[string]error{
	"ErrNotFound":        provider.ErrNotFound,
	"ErrConflict":        provider.ErrConflict,
	"ErrReadOnly":        provider.ErrReadOnly,
	"ErrRefreshRejected": provider.ErrRefreshRejected,
	"ErrLineageBroken":   provider.ErrLineageBroken,
	"ErrExpired":         provider.ErrExpired,
	"ErrInvalidRecord":   provider.ErrInvalidRecord,
	"ErrInvalidToken":    provider.ErrInvalidToken,
	"ErrNotDelivered":    provider.ErrNotDelivered,
	"ErrUnsupported":     provider.ErrUnsupported,
	"ErrNoIssuer":        provider.ErrNoIssuer,
	"ErrPermission":      provider.ErrPermission,
}

// declaredSentinels returns the names of the package-level variables named
// Err... in the package's non-test source.
func declaredSentinels(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestEverySentinelHasAKind(t *testing.T) {
	declared := declaredSentinels(t)
	if len(declared) == 0 {
		t.Fatal("found no sentinel in the package source")
	}
	for _, name := range declared {
		err, ok := sentinels[name]
		if !ok {
			t.Errorf("%s is declared but not listed in this test's sentinels map: add it there and give it a kind in kinds.go", name)
			continue
		}
		k := provider.KindOf(err)
		if k == "" {
			t.Errorf("%s has no kind: add it to the table in kinds.go, or it degrades to a plain failure at the plugin and agent boundaries", name)
			continue
		}
		if k.Err() != err {
			t.Errorf("%s: its kind %q stands for %v, not for it", name, k, k.Err())
		}
	}
	for name := range sentinels {
		if !slices.Contains(declared, name) {
			t.Errorf("sentinels lists %s, which the package does not declare", name)
		}
	}
	for _, err := range []error{context.DeadlineExceeded, context.Canceled} {
		if provider.KindOf(err) == "" {
			t.Errorf("%v has no kind", err)
		}
	}
}

func TestKindsRoundTrip(t *testing.T) {
	seen := map[provider.Kind]bool{}
	for _, k := range provider.Kinds() {
		if seen[k] {
			t.Errorf("kind %q listed twice", k)
		}
		seen[k] = true
		if !k.Valid() || k.Err() == nil {
			t.Errorf("kind %q stands for no error", k)
		}
		if got := provider.KindOf(fmt.Errorf("wrapped: %w", k.Err())); got != k {
			t.Errorf("KindOf(wrapped %v) = %q, want %q", k.Err(), got, k)
		}
		e := provider.NewError("it failed", nil, k)
		if !errors.Is(e, k.Err()) || e.Error() != "it failed" {
			t.Errorf("NewError(%q): Is = %v, message %q", k, errors.Is(e, k.Err()), e.Error())
		}
	}
	if provider.Kind("bogus").Valid() || provider.Kind("bogus").Err() != nil {
		t.Error("an unknown kind is valid")
	}
}

func TestKindsOfOrder(t *testing.T) {
	err := fmt.Errorf("x: %w: %w", provider.ErrRefreshRejected, provider.ErrLineageBroken)
	if got := provider.KindOf(err); got != provider.KindLineageBroken {
		t.Errorf("KindOf = %q, want the more telling %q", got, provider.KindLineageBroken)
	}
	want := []provider.Kind{provider.KindLineageBroken, provider.KindRefreshRejected}
	if got := provider.KindsOf(err); !slices.Equal(got, want) {
		t.Errorf("KindsOf = %v, want %v", got, want)
	}
	if provider.KindsOf(errors.New("plain")) != nil || provider.KindOf(nil) != "" {
		t.Error("a plain error has a kind")
	}
}

type sdkError struct{ code string }

func (e *sdkError) Error() string { return "sdk: " + e.code }

func TestErrorKeepsCause(t *testing.T) {
	cause := &sdkError{"AccessDenied"}
	err := fmt.Errorf("load: %w", provider.NewError("awssm: access denied", cause, provider.KindPermission, provider.Kind("nonsense")))
	var se *sdkError
	if !errors.As(err, &se) || se.code != "AccessDenied" {
		t.Errorf("errors.As did not reach the cause: %v", err)
	}
	if !errors.Is(err, provider.ErrPermission) || errors.Is(err, provider.ErrNotFound) {
		t.Errorf("kinds = %v, want exactly permission", provider.KindsOf(err))
	}
	if got := err.Error(); got != "load: awssm: access denied" {
		t.Errorf("message = %q: the cause must not be repeated", got)
	}
	var pe *provider.Error
	if !errors.As(err, &pe) || len(pe.Kinds) != 1 {
		t.Errorf("invalid kinds kept: %+v", pe)
	}
}
