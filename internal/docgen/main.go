// Command docgen writes the reference of backends, issuers and settings
// (internal/cli.Reference, generated from the scheme registry and the
// settings table) into README.md between its reference markers:
//
//	go run ./internal/docgen README.md
//
// `make docs` runs it; internal/cli's TestREADMEReference fails when the
// README and the code disagree.
package main

import (
	"fmt"
	"os"

	"github.com/credhelper/credhelper/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: docgen README.md")
		os.Exit(2)
	}
	path := os.Args[1]
	old, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	updated, err := cli.ReplaceReference(string(old))
	if err != nil {
		fmt.Fprintf(os.Stderr, "docgen: %s: %v\n", path, err)
		os.Exit(1)
	}
	if updated == string(old) {
		return
	}
	if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "docgen: updated the reference in %s\n", path)
}
