package provider

import (
	"net"
	"strings"
)

// LoopbackHost reports whether host (a name or an IP address, IPv6 with
// or without brackets) stays on this machine: the name "localhost", or an
// address in 127.0.0.0/8 or ::1. Other names are not resolved (a name can
// resolve anywhere) and count as remote. Issuers use it for the rule that
// secrets cross a plaintext transport only to a loopback address.
func LoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackAddr reports whether the host of addr (host:port) is a loopback
// host, as LoopbackHost decides.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && LoopbackHost(host)
}
