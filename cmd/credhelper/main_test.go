package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/provider"
)

// startAgent serves profile "default" (and "other") from memory on a
// private socket and points this process's environment at it.
func startAgent(t *testing.T) {
	startAgentWith(t, "", provider.Pair{AuthToken: "front-token", Endpoint: "cell-1.example.com"}, "default", "other")
}

// startAgentWith serves the named profiles, each with pair, for a config
// file holding config, and points this process's environment at both.
func startAgentWith(t *testing.T, config string, pair provider.Pair, names ...string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "front-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o700)
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(config), 0o600)
	fixed := provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) { return pair, nil })
	var profiles []server.Profile
	for _, name := range names {
		profiles = append(profiles, server.Profile{Name: name, Provider: fixed})
	}
	srv, err := server.New(profiles, func(o *server.Options) { o.ConfigPath = cfg })
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := agent.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	t.Setenv(agent.SocketEnv, sock)
	t.Setenv("CREDHELPER_CONFIG", cfg)
	for _, v := range []string{"CREDHELPER_BACKEND", "CREDHELPER_ISSUER", "CREDHELPER_NO_AGENT", "CREDHELPER_PROFILE", "CREDHELPER_ENDPOINT"} {
		t.Setenv(v, "")
	}
}

func TestFastGetAnswersFromTheAgent(t *testing.T) {
	startAgent(t)
	for _, args := range [][]string{
		{"credhelper", "get"},
		{"credhelper", "get", "--profile", "other"},
		{"credhelper", "get", "-p", "other"},
		{"credhelper", "get", "--profile=other"},
	} {
		if tok, ok := fastGet(args); !ok || tok != "front-token" {
			t.Errorf("fastGet(%q) = %q, %v; want the agent's token", args, tok, ok)
		}
	}
}

func TestFastGetDeclines(t *testing.T) {
	startAgent(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"another command", []string{"credhelper", "status"}, nil},
		{"a flag it does not handle", []string{"credhelper", "get", "--min-validity", "1h"}, nil},
		{"a backend flag", []string{"credhelper", "get", "--backend", "file:x"}, nil},
		{"a backend from the environment", []string{"credhelper", "get"}, map[string]string{"CREDHELPER_BACKEND": "file:x"}},
		{"agent disabled", []string{"credhelper", "get"}, map[string]string{"CREDHELPER_NO_AGENT": "1"}},
		{"unknown profile", []string{"credhelper", "get", "--profile", "nope"}, nil},
		{"another config file", []string{"credhelper", "get"}, map[string]string{"CREDHELPER_CONFIG": "/elsewhere/config.toml"}},
		{"a docker face name", []string{"docker-credential-credhelper", "get"}, nil},
		{"no agent", []string{"credhelper", "get"}, map[string]string{agent.SocketEnv: "/nonexistent/agent.sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tok, ok := fastGet(tt.args); ok {
				t.Fatalf("fastGet(%q) answered %q; it must leave this to credhelper-full", tt.args, tok)
			}
		})
	}
}

// TestFrontExecsFull runs the built front: answered by the agent without
// credhelper-full, and handing everything else to credhelper-full.
func TestFrontExecsFull(t *testing.T) {
	dir := t.TempDir()
	front := filepath.Join(dir, "credhelper")
	if out, err := exec.Command("go", "build", "-o", front, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	startAgent(t)
	// No credhelper-full anywhere: the agent path needs none.
	t.Setenv("CREDHELPER_FULL", filepath.Join(dir, "missing-full"))
	out, err := exec.Command(front, "get").Output()
	if err != nil || string(out) != "front-token\n" {
		t.Fatalf("front get = %q, %v", out, err)
	}
	// Anything else needs credhelper-full, found beside the front; a
	// stand-in shows it is executed with the same arguments.
	stand := filepath.Join(dir, "credhelper-full")
	os.WriteFile(stand, []byte("#!/bin/sh\necho \"full $*\"\n"), 0o755)
	t.Setenv("CREDHELPER_FULL", "")
	out, err = exec.Command(front, "status", "--json").Output()
	if err != nil || string(out) != "full status --json\n" {
		t.Fatalf("front status = %q, %v; want credhelper-full run with the same argv", out, err)
	}
	os.Remove(stand)
	cmd := exec.Command(front, "status")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "credhelper-full") {
		t.Fatalf("without credhelper-full: err %v, stderr %q", err, stderr.String())
	}
}

// TestFrontSilentAgent: an agent that accepts but does not answer holds
// the front about agent.AliveTimeout, and the front tells credhelper-full
// (through agent.SilentEnv) not to wait for it again.
func TestFrontSilentAgent(t *testing.T) {
	dir := t.TempDir()
	front := filepath.Join(dir, "credhelper")
	if out, err := exec.Command("go", "build", "-o", front, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	stand := filepath.Join(dir, "credhelper-full")
	os.WriteFile(stand, []byte("#!/bin/sh\necho \"full $* silent=$"+agent.SilentEnv+"\"\n"), 0o755)
	t.Setenv(agent.SocketEnv, sock)
	t.Setenv("CREDHELPER_CONFIG", filepath.Join(dir, "config.toml"))
	t.Setenv("CREDHELPER_FULL", "")
	start := time.Now()
	out, err := exec.Command(front, "get").Output()
	if err != nil || string(out) != "full get silent="+sock+"\n" {
		t.Fatalf("front get with a silent agent = %q, %v; want credhelper-full told the agent is silent", out, err)
	}
	if d := time.Since(start); d > agent.AliveTimeout+2*time.Second {
		t.Errorf("the front waited %v for a silent agent, want about %v", d, agent.AliveTimeout)
	}
}
