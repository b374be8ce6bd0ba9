//go:build unix

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDefaultSocketPathOrder: $XDG_RUNTIME_DIR if absolute, then
// /run/user/$UID if it is ours, then a private directory under the state
// directory, then /tmp.
func TestDefaultSocketPathOrder(t *testing.T) {
	home := t.TempDir()
	runUser := t.TempDir()
	uid := strconv.Itoa(os.Getuid())
	t.Setenv("HOME", home)
	t.Setenv("XDG_STATE_HOME", "")

	t.Setenv("XDG_RUNTIME_DIR", "/run/me")
	if got := defaultSocketPath(runUser); got != "/run/me/credhelper/agent.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "relative")
	state := filepath.Join(home, ".local", "state", "credhelper", "agent", "agent.sock")
	if got := defaultSocketPath(runUser); got != state {
		t.Errorf("with a relative XDG_RUNTIME_DIR and no /run/user/%s: %s, want %s", uid, got, state)
	}
	mine := filepath.Join(runUser, uid)
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := defaultSocketPath(runUser); got != filepath.Join(mine, "credhelper", "agent.sock") {
		t.Errorf("with /run/user/%s: %s", uid, got)
	}
	if err := os.Chmod(mine, 0o777); err != nil {
		t.Fatal(err)
	}
	if got := defaultSocketPath(runUser); got != state {
		t.Errorf("with a /run/user/%s others can write: %s, want %s", uid, got, state)
	}
	t.Setenv("XDG_STATE_HOME", "/"+strings.Repeat("s", 100))
	if got := defaultSocketPath(runUser); got != "/tmp/credhelper-"+uid+"/agent.sock" {
		t.Errorf("with a state directory too long for a socket: %s", got)
	}
}

// TestSquattedSocketDirectory: a /tmp/credhelper-$UID made first by
// another user is refused by Listen and explained by SocketProblem.
func TestSquattedSocketDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a directory as another user and must run as root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "credhelper-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.sock")
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("Listen in a squatted directory = %v", err)
	}
	err = SocketProblem(path)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") || !strings.Contains(err.Error(), "no agent can serve you") {
		t.Errorf("SocketProblem = %v", err)
	}
	if SocketProblem(filepath.Join(t.TempDir(), "x", "agent.sock")) != nil {
		t.Error("SocketProblem for a missing directory")
	}
	_, err = (&Client{Path: path}).Ping(t.Context())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping through a squatted directory = %v, want ErrUnavailable", err)
	}
}

// TestSilentAgent: an agent that accepts but does not answer (stopped,
// hung) is taken for absent within AliveTimeout, not after the request's
// timeout; a live agent whose answer to the request itself takes longer
// is waited for.
func TestSilentAgent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	slowGet := make(chan bool, 1) // true: answer the ping, then the get after 1.5s
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if !<-slowGet {
					time.Sleep(10 * time.Second) // accepted, never answers
					return
				}
				br := bufio.NewReader(c)
				for n := 0; n < 2; n++ {
					if _, err := br.ReadBytes('\n'); err != nil {
						return
					}
					if n == 1 {
						time.Sleep(1500 * time.Millisecond)
						fmt.Fprintf(c, "{\"v\":%d,\"token\":\"tok\",\"validUntil\":0}\n", ProtocolVersion)
						return
					}
					fmt.Fprintf(c, "{\"v\":%d,\"pid\":1}\n", ProtocolVersion)
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slowGet <- false
	start := time.Now()
	_, err = (&Client{Path: path}).Get(ctx, Request{Profile: "p"})
	if !errors.Is(err, ErrSilent) || !errors.Is(err, ErrUnavailable) || time.Since(start) > AliveTimeout+time.Second {
		t.Errorf("silent agent: %v after %v, want ErrSilent (and ErrUnavailable) after about %v", err, time.Since(start), AliveTimeout)
	}
	slowGet <- true
	p, err := (&Client{Path: path}).Get(ctx, Request{Profile: "p"})
	if err != nil || p.AuthToken != "tok" {
		t.Errorf("live agent answering after 1.5s: %+v, %v; want its token", p, err)
	}
}
