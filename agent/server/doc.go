// Package server is credhelper's local credential agent: a long-running
// process that keeps every configured profile fresh ahead of expiry through
// the refresh engine and answers local callers over the unix socket and
// protocol that package agent defines. It also exports the engine's
// counters and gauges in Prometheus text format.
//
// # Concurrency and freshness
//
// A Server is safe for concurrent use and serves each connection on its own
// goroutine. A get is answered from the engine's cache (one atomic load)
// while the pair is fresh. For each profile marked Keep the server runs a
// keeper that calls Credential just after the pair enters its refresh
// window (Scheduler, which *refresh.Engine implements, says when), so the
// engine refreshes in the background before any caller needs it; keepers
// sleep until that point and never poll a fresh pair.
package server
