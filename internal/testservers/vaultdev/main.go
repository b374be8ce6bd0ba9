// Command vaultdev runs a real, unsealed Vault core in memory on a loopback
// port, for credhelper's tests. It is not a mock: it is Vault's own core
// (v1.14.1, the last MPL-2.0 release) with the KV secrets engine and the
// AppRole auth method registered, served by Vault's own HTTP handler.
//
// Usage:
//
//	vaultdev [-addr 127.0.0.1:0] [-out FILE] [-log-level warn]
//
// Once the server accepts requests, vaultdev writes one line of JSON,
// {"addr": "http://127.0.0.1:PORT", "token": "ROOT_TOKEN"}, to FILE (mode
// 0600, written atomically) or to stdout, then serves until SIGTERM or
// SIGINT. Vault's own logs go to stderr. The storage is in memory: every run
// starts empty.
//
// This program lives in its own Go module so that Vault server's large
// dependency graph stays out of the credhelper module.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/builtin/credential/approle"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
	testing "github.com/mitchellh/go-testing-interface"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "vaultdev: %v\n", err)
		os.Exit(1)
	}
}

// info is what vaultdev announces once it serves.
type info struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
	// Keys are the unseal keys, base64, so that a test can seal this
	// server through the API and unseal it again.
	Keys []string `json:"keys"`
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback `host:port` to listen on")
	out := flag.String("out", "", "write the address and root token as JSON to `file` (mode 0600) instead of stdout")
	level := flag.String("log-level", "warn", "Vault's log `level` on stderr: trace, debug, info, warn, error or off")
	flag.Parse()

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed (this server's root token is announced in clear)", *addr)
	}

	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "vaultdev",
		Level:  hclog.LevelFromString(*level),
		Output: os.Stderr,
	})
	if strings.EqualFold(*level, "off") {
		logger = hclog.NewNullLogger()
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	// RuntimeT makes Vault's test helpers usable outside `go test`: a
	// failure panics, which ends this program with the reason.
	core, keys, rootToken := vault.TestCoreUnsealedWithConfig(&testing.RuntimeT{}, &vault.CoreConfig{
		Logger:             logger,
		LogicalBackends:    map[string]logical.Factory{"kv": kv.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory},
	})
	defer core.Shutdown()

	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{
		Core:           core,
		ListenerConfig: &configutil.Listener{Address: ln.Addr().String()},
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := announce(*out, info{Addr: "http://" + ln.Addr().String(), Token: rootToken, Keys: encodeKeys(keys)}); err != nil {
		return err
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// announce writes the info line to path atomically (temporary file, then
// rename), so that a reader polling for the file never sees half a line, or
// to stdout when path is empty.
func announce(path string, in info) error {
	line, err := json.Marshal(in)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if path == "" {
		_, err := os.Stdout.Write(line)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vaultdev-*.json")
	if err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("-out: %w", err)
	}
	if _, err := tmp.Write(line); err != nil {
		tmp.Close()
		return fmt.Errorf("-out: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	return nil
}

// encodeKeys returns the unseal keys in the base64 form sys/unseal takes.
func encodeKeys(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = base64.StdEncoding.EncodeToString(k)
	}
	return out
}
