// Package kubelet speaks the kubelet's image credential provider protocol
// (credentialprovider.kubelet.k8s.io/v1, GA in Kubernetes 1.26; v1beta1 and
// v1alpha1 are answered in kind), so that the kubelet pulls private images
// with a credhelper token.
//
// The kubelet runs the provider named in its CredentialProviderConfig for
// an image its matchImages allow, writes a CredentialProviderRequest
// ({"apiVersion":...,"kind":"CredentialProviderRequest","image":...}) to
// standard input and reads a CredentialProviderResponse from standard
// output, which it decodes strictly. Serve answers with:
//
//   - auth: one entry, keyed by the matching profile pattern, holding the
//     profile's username (default "credhelper") and its current auth token
//     as the password;
//   - cacheKeyType: Registry, so one answer serves every image of the
//     registry, or Image when some configured pattern with a path covers
//     the same registry (a registry-wide cache entry would then answer for
//     images another profile serves);
//   - cacheDuration: the token's remaining validity less min_validity, in
//     whole seconds, so the kubelet asks again while the token is still
//     usable ("0s" when none is left; absent for a token that never
//     expires, which leaves the kubelet's defaultCacheDuration).
//
// Patterns follow the kubelet's matchImages rules, the ones its keyring
// applies to the auth keys: the image's host must have as many dot-separated
// labels as the pattern and each label must match the pattern's label as a
// glob (path.Match: "*", "?", character classes); the port must be equal
// (none matches none); and the pattern's path must be a string prefix of
// the image's path. When several patterns match, the one with the longest
// path wins, then the one with fewer wildcards; two profiles tied after that
// are ambiguous.
//
// Errors follow the kubelet's convention: nothing on standard output, a
// one-line message on standard error, a non-zero exit status; the kubelet
// logs it and pulls without credentials from this provider. An image no
// profile matches is such an error (the kubelet's matchImages sent it here,
// so the two configurations disagree). Messages never contain a secret,
// and the request's serviceAccountToken is never read.
package kubelet
