// Package refresh is credhelper's fleet-safe refresh engine. An Engine wraps
// a provider.Backend, a provider.Issuer and one key into a
// provider.CredentialProvider that guarantees, across every goroutine,
// process and host sharing the key, that each refresh token is presented to
// the issuer at most once.
//
// # Protocol
//
// For one key (DESIGN.md section 5): serve from cache while fresh; load the
// record and adopt a newer generation another instance committed; wait for a
// live lease someone else holds; claim the refresh by writing a lease with
// CompareAndSwap; call the issuer once; journal the new pair locally (0600,
// fsync) before anything can lose it; commit it with CompareAndSwap against
// the claimed version; clear the journal and publish. On start an engine
// replays journals left by dead processes on this host.
//
// # Caching and concurrency
//
// Credential is safe for concurrent use. Its hot path (a fresh cached pair)
// is one atomic pointer load and one atomic integer load: no lock, no
// allocation and no clock read. Freshness is judged against a coarse clock,
// an integer of Unix milliseconds that one goroutine per process updates
// every CoarseTick (200ms) from the wall clock. Because Go timers run on the
// monotonic clock, which stops while a machine sleeps, the ticker fires at
// most one tick after resume, so the coarse clock lags the wall clock by at
// most CoarseTick plus scheduling delay, also across a suspend. A cached pair
// stops being served CoarseSlack (1s, five ticks) before the point where it
// would have less than MinValidity left, so that lag can never hand out a
// pair with less than MinValidity remaining. Every slow-path decision reads
// the real clock.
//
// Once a pair enters its refresh window it is still served at once while it
// has MinValidity left, and one shared refresh runs in the background. A
// caller waits only when no valid pair is cached, and never past its own
// context; the shared refresh runs on a context of its own that no caller
// can cancel.
package refresh
