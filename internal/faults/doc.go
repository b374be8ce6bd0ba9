// Package faults injects faults into a fleet of credhelper instances that
// share one credential, and its tests (the fault matrix, `make faults`)
// check that the refresh protocol's invariants I1-I5 (DESIGN.md section 5)
// survive them on the file, AWS Secrets Manager (moto) and Vault backends.
//
// The tools here are for tests only:
//
//   - Proxy, a loopback TCP proxy in front of moto, Vault or the issuer,
//     that passes, delays, blackholes (a partition) or refuses (a stopped
//     server) traffic on command;
//   - Backend and Switch, the same faults for the file backend, which has
//     no network, driven by a file so that a test can switch them inside
//     worker processes;
//   - Pause, which stops one worker at a protocol step (the engine's
//     Trace) until the test has injected its fault;
//   - ReadOnly and Full, mounts that make a directory fail even for root;
//   - Moto and Vault, servers of a test's own that it can kill or seal;
//   - Table, the matrix report written to internal/faults/report.md.
//
// The matrix itself lives in the package's tests: each cell starts a fleet
// of worker processes (internal/fleet) against one backend and a dev
// issuer (Momento protocol, or OAuth2 with or without RFC 7662
// introspection; with or without a bootstrap that heals a lost lineage),
// injects one fault during a refresh, lifts it, and checks the issuer's
// counters, the stored record, the journals and every pair the workers
// were served. `go test ./faults` runs every cell at a small
// scale; `make faults` runs them at full scale and rewrites report.md.
package faults
