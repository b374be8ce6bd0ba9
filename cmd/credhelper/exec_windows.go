package main

import (
	"errors"
	"os"
	"os/exec"
)

// runFull runs credhelper-full with the same arguments, environment and
// standard streams and exits with its status: Windows cannot replace a
// running process's image.
func runFull(full string) error {
	cmd := exec.Command(full, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
