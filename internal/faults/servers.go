package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Moto is a moto_server of a test's own, which the test may kill and
// start again on the same port (the shared one that scripts/testenv.sh
// starts must stay up for every other test).
type Moto struct {
	port int
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartMoto starts moto_server on a free loopback port, logging to a file
// in dir.
func StartMoto(ctx context.Context, dir string) (*Moto, error) {
	if _, err := exec.LookPath("moto_server"); err != nil {
		return nil, errors.New("faults: moto_server not found: install it with pip install 'moto[server]==5.2.1' and run the tests through scripts/testenv.sh")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &Moto{port: port, dir: dir}
	return m, m.Start(ctx)
}

// URL is the endpoint, "http://127.0.0.1:port".
func (m *Moto) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", m.port) }

// Addr is "127.0.0.1:port".
func (m *Moto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// Start starts moto_server (again) on its port and waits until it answers.
// moto keeps its state in memory: a restarted server is empty.
func (m *Moto) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("faults: moto_server already running")
	}
	log, err := os.OpenFile(filepath.Join(m.dir, "moto.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	defer log.Close()
	cmd := exec.Command("moto_server", "-H", "127.0.0.1", "-p", strconv.Itoa(m.port))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("faults: start moto_server: %w", err)
	}
	m.cmd = cmd
	go cmd.Wait()
	if err := waitHTTP(ctx, m.URL()+"/moto-api/"); err != nil {
		return fmt.Errorf("faults: moto_server on port %d did not answer (log in %s): %w", m.port, m.dir, err)
	}
	return nil
}

// Kill SIGKILLs moto_server and waits until its port refuses connections.
func (m *Moto) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	_ = m.cmd.Process.Kill()
	m.cmd = nil
	for range 200 {
		c, err := net.DialTimeout("tcp", m.Addr(), 100*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("faults: moto_server on port %d still accepts connections after SIGKILL", m.port)
}

// Vault is a Vault server of a test's own (bin/vaultdev), which the test
// seals and unseals through the API.
type Vault struct {
	// Addr is the URL, Token the root token.
	Addr, Token string
	keys        []string
	cmd         *exec.Cmd
}

// VaultBinary returns the vaultdev binary: $CREDHELPER_VAULTDEV, else
// bin/vaultdev above dir's module root.
func VaultBinary(dir string) (string, error) {
	if p := os.Getenv("CREDHELPER_VAULTDEV"); p != "" {
		return p, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, "bin", "vaultdev")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("faults: %s is missing: run the tests through scripts/testenv.sh, which builds it", p)
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("faults: no go.mod above the test directory, so no bin/vaultdev")
		}
	}
}

// StartVault starts bin with a state file in dir and waits for its
// announcement (address, root token and unseal keys).
func StartVault(ctx context.Context, bin, dir string) (*Vault, error) {
	out := filepath.Join(dir, "vault.json")
	log, err := os.OpenFile(filepath.Join(dir, "vault.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-out", out)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("faults: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	v := &Vault{cmd: cmd}
	for {
		if b, err := os.ReadFile(out); err == nil && len(b) > 0 {
			var in struct {
				Addr  string   `json:"addr"`
				Token string   `json:"token"`
				Keys  []string `json:"keys"`
			}
			if err := json.Unmarshal(b, &in); err != nil {
				v.Close()
				return nil, fmt.Errorf("faults: %s announced %q: %w", bin, out, err)
			}
			v.Addr, v.Token, v.keys = in.Addr, in.Token, in.Keys
			break
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("faults: %s exited before it served (log in %s)", bin, dir)
		case <-ctx.Done():
			v.Close()
			return nil, fmt.Errorf("faults: %s did not announce itself: %w", bin, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if len(v.keys) == 0 {
		v.Close()
		return nil, fmt.Errorf("faults: %s does not announce its unseal keys, so a sealed server could not be unsealed: rebuild it from internal/testservers/vaultdev with the \"keys\" field (scripts/testenv.sh rebuilds it when its sources change)", bin)
	}
	return v, waitHTTP(ctx, v.Addr+"/v1/sys/health")
}

// Seal seals the server; every request then fails with 503.
func (v *Vault) Seal(ctx context.Context) error {
	return v.call(ctx, "/v1/sys/seal", nil)
}

// Unseal submits the unseal keys.
func (v *Vault) Unseal(ctx context.Context) error {
	for _, k := range v.keys {
		if err := v.call(ctx, "/v1/sys/unseal", map[string]string{"key": k}); err != nil {
			return err
		}
	}
	return waitHTTP(ctx, v.Addr+"/v1/sys/health")
}

func (v *Vault) call(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, v.Addr+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("faults: vault %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("faults: vault %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}

// Close stops the server.
func (v *Vault) Close() error {
	if v.cmd != nil && v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
	}
	return nil
}

// waitHTTP polls url until it answers with any status.
func waitHTTP(ctx context.Context, url string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(url, "/sys/health") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: %s did not answer: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("faults: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
