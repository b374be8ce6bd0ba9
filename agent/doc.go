// Package agent is the client side of credhelper's local credential agent,
// and what client and server share: the socket's location and safety
// checks, and the wire protocol. The agent itself (the server, its keepers
// and metrics) is package agent/server.
//
// This package imports nothing but the standard library, x/sys and
// provider, so that the small credhelper front binary can answer
// `credhelper get` from the agent in a few milliseconds.
//
// # Socket
//
// The socket lives in $XDG_RUNTIME_DIR/credhelper/agent.sock, else in
// /run/user/$UID/credhelper, else under $XDG_STATE_HOME/credhelper/agent,
// and in /tmp/credhelper-$UID/agent.sock only when none of those exists
// (DefaultSocketPath; $CREDHELPER_AGENT_SOCKET overrides them). Its directory is
// 0700 and owned by the user, the socket is 0600, and the server checks
// every peer's UID with SO_PEERCRED, refusing other users; the client checks
// the agent's UID the same way, so neither side talks to a stranger. One
// agent per socket: Listen holds an exclusive lock next to the socket for
// the agent's lifetime, replaces a stale socket left by a dead agent and
// refuses to start while another agent holds the lock.
//
// # Protocol
//
// Newline-delimited JSON, one request and one response per line, several
// requests per connection allowed (Request, Response). Every message
// carries "v": ProtocolVersion; a server answers a version it does not
// speak with the kind "bad_version". Operations: "get" returns a profile's
// auth token, expiry, endpoint and generation (never the refresh token,
// which only the agent may spend); "status" returns every profile's
// generation, expiry and last error, never a token; "ping" returns the
// agent's pid and version. Errors carry a kind that the client maps back to
// the provider sentinel it stands for (KindNotFound to
// provider.ErrNotFound, and so on), so callers branch with errors.Is across
// the socket exactly as they would in process.
//
// # Concurrency
//
// A Client is safe for concurrent use and opens one connection per call.
package agent
