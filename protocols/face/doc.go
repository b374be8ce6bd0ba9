// Package face holds what the helper protocols of build tools and package
// managers share: the Resolver that turns a profile name into its current
// pair, the optional Refresher for protocols whose tool reports a rejected
// token, and a bounded read of a request.
//
// Each protocol package (goauth, cargo, kubelet, bazel, terraform) is a pure
// function over a request and an output stream that depends on this
// package and provider only; the command wires a Resolver that asks a
// running agent first and the refresh engine otherwise.
package face
