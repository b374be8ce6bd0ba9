package cli

import (
	"os"
	"testing"
)

// TestREADMEReference holds README's settings reference to the code's
// tables: a setting or scheme added, renamed or redocumented without
// `make docs` fails here.
func TestREADMEReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceReference(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if string(readme) != want {
		t.Error("README.md's reference differs from the scheme registry and the settings table: run `make docs` and commit README.md")
	}
}
