package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Mode is what a Proxy does with traffic.
type Mode int

const (
	// Pass forwards traffic both ways at once.
	Pass Mode = iota
	// Delay holds every client-to-server chunk for the proxy's delay
	// before forwarding it, so each request reaches the server (and its
	// answer the client) that much later: a slow service.
	Delay
	// Blackhole accepts connections but forwards nothing either way, as a
	// network partition that drops packets does. Connections that carried
	// traffic into the blackhole are reset when it ends, so nothing sent
	// during the partition is ever delivered.
	Blackhole
	// Refuse closes the listening socket and resets every connection: a
	// stopped server. Connecting fails with "connection refused".
	Refuse
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Blackhole:
		return "blackhole"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Proxy is a loopback TCP proxy in front of one server whose behaviour a
// test switches while clients use it. Create it with NewProxy. It is safe
// for concurrent use.
type Proxy struct {
	target string
	addr   string

	mu      sync.Mutex // guards the fields below
	ln      net.Listener
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every Set
	conns   map[*proxyConn]struct{}
	closed  bool
}

// proxyConn is one client connection and its server side.
type proxyConn struct {
	client, server net.Conn
	// holed is set, under Proxy.mu, when traffic reached the blackhole;
	// the connection is reset when the blackhole ends.
	holed bool
}

// NewProxy listens on a free loopback port and forwards to target
// ("host:port"), in Pass mode.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: proxy listen: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, changed: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port"; it stays the same across Refuse.
func (p *Proxy) Addr() string { return p.addr }

// URL is "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.addr }

// Set switches the mode; delay is used in Delay mode. Leaving Refuse
// listens again on the same address; leaving Blackhole resets the
// connections that carried traffic into it.
func (p *Proxy) Set(m Mode, delay time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faults: proxy closed")
	}
	prev := p.mode
	p.mode, p.delay = m, delay
	close(p.changed)
	p.changed = make(chan struct{})
	switch {
	case m == Refuse && prev != Refuse:
		p.ln.Close()
		p.ln = nil
		for c := range p.conns {
			c.reset()
		}
		clear(p.conns)
	case prev == Refuse && m != Refuse:
		var ln net.Listener
		var err error
		for range 50 { // the port was ours a moment ago; retry briefly if taken
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("faults: proxy listen again on %s: %w", p.addr, err)
		}
		p.ln = ln
		go p.accept(ln)
	case prev == Blackhole && m != Blackhole:
		for c := range p.conns {
			if c.holed {
				c.reset()
				delete(p.conns, c)
			}
		}
	}
	return nil
}

// Close stops the proxy and resets every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.reset()
	}
	clear(p.conns)
	close(p.changed)
	return nil
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	c := &proxyConn{client: client, server: server}
	p.mu.Lock()
	if p.closed || p.mode == Refuse {
		p.mu.Unlock()
		c.reset()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, client, server, true); done <- struct{}{} }()
	go func() { p.pipe(c, server, client, false); done <- struct{}{} }()
	<-done
	c.reset()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// chunk is data read at a time.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies src to dst through the proxy's current mode. upstream is
// the client-to-server direction, the one Delay slows.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn, upstream bool) {
	ch := make(chan chunk, 64)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{data: buf[:n], at: time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for ck := range ch {
		if !p.gate(c, ck.at, upstream) {
			return
		}
		if _, err := dst.Write(ck.data); err != nil {
			return
		}
	}
	// src reached EOF: pass the half-close on.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// gate waits until a chunk read at may be forwarded; false means drop
// the connection.
func (p *Proxy) gate(c *proxyConn, at time.Time, upstream bool) bool {
	for {
		p.mu.Lock()
		mode, delay, changed, closed := p.mode, p.delay, p.changed, p.closed
		if mode == Blackhole {
			c.holed = true
		}
		p.mu.Unlock()
		switch {
		case closed || mode == Refuse:
			return false
		case mode == Blackhole:
			<-changed
			p.mu.Lock()
			holed := c.holed
			p.mu.Unlock()
			if holed && p.currentMode() != Blackhole {
				return false // reset by Set; what was sent is lost
			}
			continue
		case mode == Delay && upstream:
			wait := time.Until(at.Add(delay))
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop()
				continue // re-evaluate under the new mode
			}
		}
		return true
	}
}

func (p *Proxy) currentMode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (c *proxyConn) reset() {
	resetConn(c.client)
	resetConn(c.server)
}

// resetConn closes c with an RST rather than a FIN, as a crashed peer or
// a dropped connection-tracking entry does.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

var _ io.Closer = (*Proxy)(nil)
