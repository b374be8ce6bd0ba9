// Package kubectl speaks the client-go exec credential plugin protocol
// (client.authentication.k8s.io), so that kubectl and every other client-go
// program can take a bearer token from credhelper.
//
// client-go runs the plugin named in the kubeconfig's users[].user.exec
// section with the environment variable KUBERNETES_EXEC_INFO holding an
// ExecCredential that states the apiVersion it expects, and reads an
// ExecCredential of that apiVersion on standard output:
//
//	{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
//	 "status": {"token": "...", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
//
// Serve answers client.authentication.k8s.io/v1 and, for older kubeconfigs,
// v1beta1, always in the version KUBERNETES_EXEC_INFO asks for (client-go
// refuses any other). Without KUBERNETES_EXEC_INFO (a person running the
// command) it answers v1. The expiration timestamp is the pair's expiry in
// RFC 3339; it is omitted for a pair that never expires, which client-go
// then caches for the life of its process. client-go re-runs the plugin
// once that time has passed or the server answers 401.
//
// Errors follow client-go's convention: nothing on standard output, the
// message on standard error and a non-zero exit status (printed and set by
// the command in cmd/credhelper). Messages never contain a secret.
package kubectl
