package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/credhelper/credhelper/provider"
)

// ErrUnavailable reports that no agent answered: no socket, nobody
// listening, a socket served by another user, or a protocol the client does
// not speak. Callers fall back to resolving the credential themselves.
var ErrUnavailable = errors.New("agent: no agent answers")

// ErrSilent reports an agent that accepted the connection but did not
// answer a ping within AliveTimeout: stopped (SIGSTOP), hung or starved.
// It wraps ErrUnavailable, so callers fall back; they should say so.
var ErrSilent = errors.New("the agent did not answer")

// ErrUnknownProfile reports that the agent does not serve the profile (or
// serves another config file). Callers fall back to direct resolution.
var ErrUnknownProfile = errors.New("agent: profile not served by the agent")

// DefaultDialTimeout bounds connecting to the socket. A unix socket either
// accepts at once or refuses at once; the bound only matters for an agent
// whose accept backlog is full.
const DefaultDialTimeout = 100 * time.Millisecond

// AliveTimeout bounds the answer to the ping a client sends ahead of a
// get or status on the same connection: a live agent answers a ping at
// once, even while the request behind it waits for a refresh, so one that
// does not is taken for absent (ErrSilent) instead of holding the caller
// for the whole request timeout.
const AliveTimeout = time.Second

// DefaultRequestTimeout bounds one request when ctx has no deadline. A get
// may wait for a refresh when the agent holds no valid pair.
const DefaultRequestTimeout = 30 * time.Second

// Client talks to an agent. The zero value uses SocketPath() and the
// defaults; it is safe for concurrent use and opens one connection per call,
// which on a unix socket costs a few microseconds.
type Client struct {
	// Path is the socket; empty means SocketPath().
	Path string
	// DialTimeout bounds connecting; zero means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Get asks the agent for the current pair of req.Profile (req.Op and req.V
// are set by Get). The returned pair has no refresh token. It returns an
// error wrapping ErrUnavailable or ErrUnknownProfile when the caller should
// resolve the credential itself, and an *Error, which unwraps to the
// provider sentinel for its kind, when the agent resolved the profile and
// failed.
func (c *Client) Get(ctx context.Context, req Request) (provider.Pair, error) {
	req.V, req.Op = ProtocolVersion, OpGet
	r, err := c.do(ctx, req)
	if err != nil {
		return provider.Pair{}, err
	}
	if r.Token == "" {
		return provider.Pair{}, fmt.Errorf("agent: the agent sent no token for %q: %w", req.Profile, ErrUnavailable)
	}
	return r.pairOf(), nil
}

// Status returns the agent's view of every profile; it never carries a
// token.
func (c *Client) Status(ctx context.Context) (Response, error) {
	return c.do(ctx, Request{V: ProtocolVersion, Op: OpStatus})
}

// Ping checks that an agent answers and returns its pid and version.
func (c *Client) Ping(ctx context.Context) (Response, error) {
	return c.do(ctx, Request{V: ProtocolVersion, Op: OpPing})
}

// do makes one round trip on a fresh connection.
func (c *Client) do(ctx context.Context, req Request) (Response, error) {
	path := c.Path
	if path == "" {
		path = SocketPath()
	}
	dt := c.DialTimeout
	if dt == 0 {
		dt = DefaultDialTimeout
	}
	d := net.Dialer{Timeout: dt}
	if err := platformSupported(); err != nil {
		return Response{}, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("agent: connect %s: %w: %w", path, err, ErrUnavailable)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	// Only trust an agent run by this user: anyone may create a socket in
	// a directory they control.
	cred, err := PeerCred(conn)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	if cred.UID != os.Geteuid() {
		return Response{}, fmt.Errorf("agent: %s is served by uid %d, not by you (uid %d): %w", path, cred.UID, os.Geteuid(), ErrUnavailable)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultRequestTimeout)
	}
	_ = conn.SetDeadline(deadline)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	line, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("agent: encode request: %w", err)
	}
	// A ping ahead of the request, in the same write: its answer says the
	// agent is alive before the caller waits for the request's.
	ping := req.Op == OpPing
	var out []byte
	if !ping {
		out = append(out, pingLine...)
	}
	out = append(append(out, line...), '\n')
	if _, err := conn.Write(out); err != nil {
		return Response{}, fmt.Errorf("agent: send request: %w: %w", err, ErrUnavailable)
	}
	br := bufio.NewReaderSize(conn, 4096)
	// The first answer, the ping's, within AliveTimeout.
	pingBy := time.Now().Add(AliveTimeout)
	if deadline.Before(pingBy) {
		pingBy = deadline
	}
	_ = conn.SetReadDeadline(pingBy)
	first, err := readResponse(br)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("agent: waiting for the agent: %w", ctx.Err())
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return Response{}, &silentError{path: path}
		}
		return Response{}, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	r := first
	if !ping {
		_ = conn.SetReadDeadline(deadline)
		if ctx.Err() != nil { // cancelled while the deadline was reset
			return Response{}, fmt.Errorf("agent: waiting for the agent: %w", ctx.Err())
		}
		if r, err = readResponse(br); err != nil {
			if ctx.Err() != nil {
				return Response{}, fmt.Errorf("agent: waiting for the agent: %w", ctx.Err())
			}
			return Response{}, fmt.Errorf("%w: %w", err, ErrUnavailable)
		}
	}
	if r.Error != "" {
		switch r.Kind {
		case KindUnknownProfile:
			return Response{}, fmt.Errorf("agent: %s: %w", r.Error, ErrUnknownProfile)
		case KindBadVersion, KindBadRequest:
			return Response{}, fmt.Errorf("agent: the agent refused the request (%s): %w", r.Error, ErrUnavailable)
		}
		return Response{}, &Error{Kind: r.Kind, Kinds: r.Kinds, Message: r.Error, Transient: r.Transient, Want: r.Want, Have: r.Have}
	}
	return r, nil
}

// SilentEnv is set by the credhelper front, for the credhelper-full it
// executes, to the socket of an agent that did not answer it (ErrSilent):
// the full binary then does not wait for that agent a second time.
// credhelper-full removes it from its environment at start.
const SilentEnv = "CREDHELPER_INTERNAL_AGENT_SILENT"

// Silent returns the ErrSilent error for the agent at path.
func Silent(path string) error { return &silentError{path: path} }

// silentError is ErrSilent for the agent at path; it is ErrUnavailable
// too.
type silentError struct{ path string }

func (e *silentError) Error() string {
	return fmt.Sprintf("the agent at %s did not answer within %v (stopped or hung?)", e.path, AliveTimeout)
}

func (e *silentError) Is(target error) bool { return target == ErrSilent || target == ErrUnavailable }

// pingLine is a ping request, newline included.
var pingLine = func() []byte {
	b, _ := json.Marshal(Request{V: ProtocolVersion, Op: OpPing})
	return append(b, '\n')
}()

// readResponse reads one response line of at most MaxResponse bytes.
func readResponse(br *bufio.Reader) (Response, error) {
	line, err := ReadLine(br, MaxResponse)
	if err != nil {
		return Response{}, fmt.Errorf("agent: read response: %w", err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		return Response{}, fmt.Errorf("agent: the agent's response is not JSON: %w", err)
	}
	if r.V != ProtocolVersion {
		return Response{}, fmt.Errorf("agent: the agent speaks protocol version %d, this client %d: restart the agent after upgrading", r.V, ProtocolVersion)
	}
	return r, nil
}

// ErrTooLong reports a line over the limit.
var ErrTooLong = errors.New("line too long")

// ReadLine reads up to and excluding '\n', refusing lines over max bytes.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return nil, ErrTooLong
		}
		if err == nil {
			if buf == nil {
				return frag[:len(frag)-1], nil
			}
			return append(buf, frag[:len(frag)-1]...), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		buf = append(buf, frag...)
	}
}
