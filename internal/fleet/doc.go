// Package fleet runs a fleet of OS processes, each with many goroutines,
// that share one credential through the refresh engine, and collects what
// every process saw. The engine's multi-process stress and crash tests use
// it, and the benchmarks reuse it for their "fleet storm" numbers.
//
// The parent (a test) calls Start or Run with a Spec. Each worker process is
// the test binary re-executed with -test.run selecting the same test
// function; that function begins with
//
//	if fleet.Child(build) {
//		return
//	}
//
// so that in a worker it builds its Target (backend, issuer, key, engine
// options) from the Spec's Params, runs the goroutines and prints one JSON
// Report on stdout, and in the parent it does nothing.
//
// A worker goroutine calls Credential in a loop, pausing Spec.Interval
// between calls, until the process has been served Spec.Generations or the
// deadline passes. For every call it records the latency (split into calls
// that waited for a generation this process had not served before and calls
// served a known one), checks the pair it got (at least Spec.MinValidity
// left at the instant it was served, an auth token that decodes and has not
// expired, no generation lower than one this process had already served
// before the call began) and remembers each distinct pair served, per
// generation, with the times it was first and last served. The parent
// merges the reports; two different pairs served under one generation
// anywhere in the fleet are reported as a fork.
//
// Nothing a worker reports contains a token: pairs are identified by
// provider.Fingerprint.
package fleet
