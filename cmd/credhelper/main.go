// Command credhelper resolves, refreshes and hands out expiring token pairs.
// Run `credhelper --help` for its commands.
//
// This binary is a small front. The whole command line lives in
// credhelper-full, installed next to it, which links every backend, issuer
// and SDK and so takes about ten milliseconds just to start. The front
// answers the calls that must be fast, `credhelper get` and the build-tool
// faces (GOAUTH's first run, cargo, the kubelet, Bazel, Terraform's get)
// for profiles a running agent serves, by itself in a few milliseconds,
// and replaces itself with credhelper-full (same arguments, same name, same
// environment) for everything else, including every case the agent cannot
// answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/coredump"
)

func main() {
	// Before any token is in memory: no core file may hold one.
	_ = coredump.Disable()
	if token, ok := fastGet(os.Args); ok {
		os.Stdout.WriteString(token + "\n")
		os.Exit(0)
	}
	if code, ok := fastFace(os.Args, os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	full, err := fullPath()
	if err == nil {
		err = runFull(full)
	}
	fmt.Fprintf(os.Stderr, "credhelper: cannot run credhelper-full (%v): install it next to credhelper (make install does), or set $%s\n", err, config.EnvFull)
	os.Exit(1)
}

// fullPath finds credhelper-full: $CREDHELPER_FULL, else beside this
// executable (after resolving symlinks such as docker-credential-credhelper).
func fullPath() (string, error) {
	if p := os.Getenv(config.EnvFull); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	return filepath.Join(filepath.Dir(self), "credhelper-full"), nil
}

// fastGet answers `credhelper get [--profile P]` from a running agent. It
// declines (ok false) whenever anything else is asked or set that the
// agent path does not handle exactly as credhelper-full would, and on any
// failure, leaving credhelper-full to answer, or to explain the error.
func fastGet(args []string) (token string, ok bool) {
	if filepath.Base(args[0]) != "credhelper" || len(args) < 2 || args[1] != "get" {
		return "", false
	}
	// Settings that change what a get returns, which the agent path of
	// credhelper-full handles itself.
	for _, v := range []string{config.EnvBackend, config.EnvIssuer, config.EnvNoAgent, config.EnvMinValidity} {
		if os.Getenv(v) != "" {
			return "", false
		}
	}
	profile := os.Getenv(config.EnvProfile)
	rest := args[2:]
	switch {
	case len(rest) == 0:
	case len(rest) == 2 && (rest[0] == "--profile" || rest[0] == "-p"):
		profile = rest[1]
	case len(rest) == 1 && strings.HasPrefix(rest[0], "--profile="):
		profile = strings.TrimPrefix(rest[0], "--profile=")
	default:
		return "", false
	}
	if profile == "" {
		profile = config.DefaultProfile
	}
	cfg := config.DefaultPath()
	if cfg != "" {
		if abs, err := filepath.Abs(cfg); err == nil {
			cfg = abs
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := agent.Client{Path: agent.SocketPath()}
	p, err := c.Get(ctx, agent.Request{Profile: profile, Endpoint: os.Getenv(config.EnvEndpoint), Config: cfg})
	if err != nil || p.AuthToken == "" {
		noteSilent(err, c.Path)
		return "", false
	}
	return p.AuthToken, true
}

// noteSilent tells credhelper-full, through its environment, that the
// agent at path did not answer, so it warns and resolves directly instead
// of waiting for it again.
func noteSilent(err error, path string) {
	if errors.Is(err, agent.ErrSilent) {
		_ = os.Setenv(agent.SilentEnv, path)
	}
}
