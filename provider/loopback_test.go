package provider

import "testing"

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7777":       true,
		"127.9.8.7:1":          true,
		"[::1]:7777":           true,
		"localhost:7777":       true,
		"LOCALHOST:1":          true,
		"10.0.0.5:7777":        false,
		"0.0.0.0:7777":         false,
		"[::]:7777":            false,
		"example.com:443":      false,
		"localhost.evil.com:1": false,
		"127.0.0.1.nip.io:1":   false,
		"127.0.0.1":            false, // no port
		"":                     false,
	} {
		if got := LoopbackAddr(addr); got != want {
			t.Errorf("LoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
