// Package model holds a Promela model of credhelper's fleet refresh
// protocol (DESIGN.md section 5) and the tests that check it with spin.
//
// The model is refresh.pml: three instances, a versioned store with
// compare-and-swap, an issuer with one-time refresh tokens and reuse
// detection, lease expiry by an abstract clock with skew between hosts,
// crashes before any step, lost store acknowledgements and partitions.
// It checks the invariants I1-I5 as assertions and progress as LTL
// claims, for today's protocol and with the next steps (lease renewal,
// introspection before takeover, self-healing) switched on. README.md
// lists every process's steps in order: the Go code in refresh/ follows
// it.
//
// The package has no Go API. Its test builds spin's verifier for each
// run of a table (the real model at a bound, known limits of today's
// protocol, and mutants that each drop one protocol step) and asserts
// the outcome: no violation for the real model, the named invariant
// broken for each limit and mutant. `go test ./model` runs the short
// table (make test); `make model` runs the full one with bigger bounds
// and writes results.md.
package model
