// Package terraform speaks the credentials helper protocol of Terraform and
// OpenTofu, so that `terraform init` and every other access to a private
// module registry, provider registry or HCP Terraform host carries a
// credhelper token.
//
// Terraform's CLI configuration names one helper with a
// credentials_helper "NAME" block; Terraform runs
// terraform-credentials-NAME (found in its plugin directories, not on PATH)
// with the block's args and then:
//
//   - get HOST: Serve prints {"token":"..."} with the current auth token of
//     the profile whose terraform.hosts names HOST, or {} when none does,
//     so Terraform goes on without credentials for that host. HOST arrives
//     in its ASCII (punycode) form and, for a host with a port, as
//     host:port; names compare without regard to case.
//   - store HOST (terraform login) reads the JSON object on standard input
//     to its end and refuses: credhelper owns its credentials.
//   - forget HOST (terraform logout) refuses for a host a profile serves
//     and succeeds, doing nothing, for any other host.
//
// Errors follow Terraform's convention: a plain-text message on standard
// error and a non-zero exit status, which Terraform reports as "error in
// terraform-credentials-NAME: MESSAGE". Messages never contain a secret.
// TF_TOKEN_<host> variables and credentials blocks in the CLI configuration
// take precedence over the helper.
package terraform
