package main

import (
	"context"

	"github.com/spf13/cobra"
)

// addFaces adds the commands that speak other tools' helper protocols.
func (a *app) addFaces(root *cobra.Command) {}

// dispatchByName runs a face chosen by the name the binary was invoked
// under (docker-credential-credhelper, git-credential-credhelper).
func (a *app) dispatchByName(ctx context.Context, args []string) (int, bool) {
	return 0, false
}
