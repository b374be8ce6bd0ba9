package momento

import (
	"strings"
	"testing"
)

// TestPlaintextOnlyToLoopback: Insecure (plaintext gRPC, what dev:HOST:PORT
// and momento:HOST:PORT --insecure use) is refused for any address that
// is not loopback, with one error that says why and what to do.
func TestPlaintextOnlyToLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7777":      true,
		"[::1]:7777":          true,
		"localhost:7777":      true,
		"10.1.2.3:7777":       false,
		"0.0.0.0:7777":        false,
		"dev.example.com:443": false,
	} {
		_, err := New(func(o *Options) { o.Addr, o.Insecure = addr, true })
		if ok && err != nil {
			t.Errorf("Insecure to %s: %v", addr, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "cleartext") || !strings.Contains(err.Error(), addr)) {
			t.Errorf("Insecure to %s: %v, want a refusal naming the address", addr, err)
		}
	}
	// TLS to any host stays allowed.
	if _, err := New(func(o *Options) { o.Addr = "10.1.2.3:443" }); err != nil {
		t.Errorf("TLS to a remote host: %v", err)
	}
}

// TestAddrMustBeHostPort: an address without a host, or with a port
// outside 1-65535, is refused at New with the form to write.
func TestAddrMustBeHostPort(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:99999", "127.0.0.1:0", ":443", "example.com", "127.0.0.1:http-ish"} {
		_, err := New(func(o *Options) { o.Addr = addr })
		if err == nil || !strings.Contains(err.Error(), "is not host:port") {
			t.Errorf("Addr %q: %v, want refused as not host:port", addr, err)
		}
	}
	if _, err := New(func(o *Options) { o.Addr = "127.0.0.1:7777"; o.Insecure = true }); err != nil {
		t.Errorf("Addr 127.0.0.1:7777: %v", err)
	}
}
