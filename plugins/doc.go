// Package plugins runs credhelper backends and issuers as separate
// processes, over hashicorp/go-plugin and gRPC.
//
// A plugin author writes a provider.Backend or provider.Issuer and serves
// it from main:
//
//	func main() { plugins.ServeBackend(myBackend) }
//
// The host opens the plugin binary by path, pinned by its SHA-256, then
// the part it needs:
//
//	p, err := plugins.Open(plugins.Spec{Path: "/usr/lib/credhelper/plugins/gcpsm", SHA256: "9f86d0..."})
//	defer p.Close()
//	backend, err := p.Backend(ctx) // a provider.Backend
//
// # Capabilities
//
// Capabilities are asked, not assumed. Plugin.Backend and Plugin.Issuer
// start the process and ask it once what the served value declares (Serve
// derives the declaration from the value's optional interfaces; see
// ServeConfig), and the returned value implements exactly those optional
// provider interfaces: a backend is a provider.ReadOnlyBackend answered
// from the declaration without I/O, and a provider.WriteChecker only if
// declared; an issuer is a provider.RefreshPolicyIssuer with the declared
// policy, and a provider.Generator or provider.Introspector only if
// declared. So `_, ok := iss.(provider.Generator)` means the same for a
// plugin as for an issuer in process.
//
// A value's method set cannot change, but a restarted process may declare
// something else (a plugin may derive its capabilities from its
// environment). The first call after a restart therefore asks again, and
// if the answer differs, calls through values opened earlier fail with
// ErrCapabilitiesChanged (transient, and provider.ErrNotDelivered: nothing
// was sent) instead of silently lying; open the part again for a value
// that matches. go-plugin itself never restarts a plugin: its users
// dispense a new client after a crash, which is what reopening amounts to.
//
// A plugin built before a capability or pair field existed declares it
// zero: its issuer has the conservative zero provider.RefreshPolicy, pair
// times it does not know arrive as unknown, and an RPC it does not
// implement fails with provider.ErrUnsupported.
//
// # Protocol
//
// The wire protocol is the gRPC package credhelper.plugin.v1
// (plugins/proto), served as go-plugin protocol version 1 (Handshake,
// VersionedPlugins). A later incompatible protocol is added as version 2
// next to it, so old plugins keep working.
//
// Errors keep their kind across the boundary: the plugin side encodes the
// provider sentinel errors an error wraps (errors.Is) and whether it is
// transient into a gRPC status with a google.rpc.ErrorInfo detail; the host
// side rebuilds an error that wraps the same sentinels and, when transient,
// a *provider.TransientError. Error and log text crosses the boundary as
// written by the plugin (errors truncated to MaxErrorMessage bytes), so a
// plugin must never put a token in an error or a log line, exactly like an
// in-process backend.
//
// # Lifecycle
//
// A Plugin starts its process when a part is opened (Plugin.Open itself
// starts nothing), reuses it for every later call from any goroutine, and
// restarts it on the next call after it crashed; the call in flight when it crashed fails with a transient error
// (never provider.ErrNotDelivered: a crashed issuer may have spent the
// refresh token). Close kills it. The process also dies with the host, even
// when the host is SIGKILLed: on Linux the kernel signals it (Pdeathsig),
// and the served side exits when its stdin pipe from the host closes or its
// parent changes.
//
// # Security
//
// The host verifies, before every start, that the binary is a regular file
// owned by the current user or root, not writable by group or others, in a
// directory others cannot replace it in, and that its SHA-256 equals the
// configured one. The connection uses go-plugin's AutoMTLS. The plugin does
// not inherit the host's environment: it gets PATH, HOME and TMPDIR plus
// Spec.Env. Its stderr is forwarded to the host's *slog.Logger; its stdout
// belongs to go-plugin, and a plugin that writes anything there before the
// handshake is refused without its output being repeated.
package plugins
