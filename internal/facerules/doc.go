// Package facerules turns the per-face tables of a configuration file
// ([profiles.NAME.goauth], .cargo, .kubelet, .bazel, .terraform) into the
// rules of the protocol packages. Both the full command and the small
// front (which answers these faces from a running agent) build their
// helpers from it, so the two always match requests to the same profiles.
package facerules
