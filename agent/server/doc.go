// Package server is credhelper's local credential agent: a long-running
// process that keeps every configured profile fresh ahead of expiry through
// the refresh engine, answers local callers over the unix socket and
// protocol that package agent defines, keeps sink files with each profile's
// auth token for programs that cannot speak the socket, and exports the
// engines' counters and gauges in Prometheus text format.
//
// # Concurrency and freshness
//
// A Server is safe for concurrent use and serves each connection on its own
// goroutine. A get is answered from the engine's cache (one atomic load)
// while the pair is fresh. For each profile marked Keep the server runs a
// keeper that calls Credential just after the pair enters its refresh
// window (Scheduler, which *refresh.Engine implements, says when), so the
// engine refreshes in the background before any caller needs it. A keeper
// holds no goroutine while it waits for that point: a timer puts it on a
// worker pool of Options.Workers goroutines, which also bounds how many
// refreshes keepers start at once and warms the profiles in parallel
// (Warm). While the refresh it started runs, the engine's Changed
// (ChangeNotifier) wakes it when the new pair is published.
//
// # Sinks
//
// A keeper writes its profile's sinks (SinkSpec) at its first step and on
// every new generation, atomically, and empties or removes them before the
// pair drops below the profile's minimum validity. Commands run after a
// write on goroutines of their own, never holding up a keeper.
//
// # Reload
//
// Update swaps the set of profiles while requests are answered: unchanged
// profiles run on, removed and replaced ones stop (their sinks emptied
// unless the new set has them) and are returned for the caller to close.
package server
