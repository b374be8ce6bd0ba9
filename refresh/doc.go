// Package refresh is credhelper's fleet-safe refresh engine. An Engine wraps
// a provider.Backend, a provider.Issuer and one key into a
// provider.CredentialProvider that guarantees, across every goroutine,
// process and host sharing the key, that each refresh token is presented to
// the issuer at most once.
//
// # Protocol
//
// The types follow the design: the cache wraps the protocol. Engine
// (cache.go) is step 1, the cache: freshness, the shared refresh, backoff,
// serving the last good pair, Changed. It wraps a protocol (protocol.go),
// which owns steps 2 to 8 and their state, one method per step, listed at
// the top of protocol.go, and changes what the cache serves only through a
// small seam (cacheSeam). The protocol's helpers are in claim.go (the
// lease and its renewal), journal.go (the journal and its replay),
// outcomes.go (why a pair cannot be refreshed, what a broken lineage means
// per issuer) and heal.go (the re-bootstrap). For a read-only backend
// under UnsafeRefreshInMemory the cache wraps, instead of the protocol, a
// chain kept in memory in front of the stored pair (memory.go).
//
// For one key (DESIGN.md section 5): serve from cache while fresh; load the
// record and adopt a newer generation another instance committed; wait for a
// live lease someone else holds; claim the refresh by writing a lease with
// CompareAndSwap; call the issuer once; journal the new pair locally (0600,
// fsync) before anything can lose it; commit it with CompareAndSwap against
// the claimed version; clear the journal and publish. On start an engine
// replays journals left by dead processes on this host.
//
// # Lifetimes
//
// A pair's window is sized from its lifetime, measured from when it was
// issued (the record's issuedAt, else the JWT iat; unknown: RefreshFloor
// alone), so every process decides alike. Whether an expired auth token can
// still be refreshed is the issuer's provider.RefreshPolicy: OAuth2 refresh
// tokens outlive access tokens (until refreshValidUntil, when known);
// Momento refreshes authenticate with the current key. A pair that lives no
// longer than MinValidity is refused (LifetimeError) before anything is
// spent. A read-only backend is served while usable and never refreshed
// (ReadOnlyError), unless UnsafeRefreshInMemory.
//
// # Renewal, asking before taking over, healing
//
// From its claim to its commit the holder renews its lease by
// compare-and-swap every third of LeaseDuration (claim.go), so a slow
// issuer never lets another instance take a live holder for dead; the
// issuer call runs up to the IssuerTimeout ceiling while the lease holds,
// and is cancelled, never to be presented again, once the lease cannot be
// renewed. An instance that takes over an expired lease first asks an
// issuer that implements provider.Introspector whether the token is still
// active; a spent token means its predecessor got an answer, so the taker
// keeps the claim and waits for the predecessor's commit (or journal)
// instead of presenting it. With Options.Bootstrap, a lineage marked broken
// or whose refresh token expired is healed (heal.go): one instance claims a
// lease of kind heal, bootstraps once, journals and commits generation N+1
// with a healed note; a failure records a backoff in the record that every
// instance honours.
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
