// Package awssm is a provider.Backend that keeps a credential record in an
// AWS Secrets Manager secret, with a compare-and-swap that holds across every
// process and host writing the same secret.
//
// The key is the secret's name or ARN. Load reads the version labelled
// AWSCURRENT (always naming the label explicitly) and reports its VersionId as
// the version. CompareAndSwap never moves AWSCURRENT unconditionally:
//
//  1. it reads AWSCURRENT and stops with provider.ErrConflict if that is not
//     the expected version (or refuses if the stored value is binary or not a
//     JSON object, so such a secret is never overwritten);
//  2. it stores the new value with PutSecretValue under a private staging
//     label (Options.StagingLabel, never AWSPENDING, which rotation lambdas
//     own) and a ClientRequestToken derived from the expected version and
//     the new value, so a retried call is idempotent;
//  3. it moves AWSCURRENT with UpdateSecretVersionStage(MoveToVersionId=new,
//     RemoveFromVersionId=expected), which the service refuses when expected
//     no longer holds AWSCURRENT. A refusal is confirmed with DescribeSecret
//     before it is reported as provider.ErrConflict;
//  4. it removes the private label again (best effort), so the label does
//     not accumulate and a lost write leaves an unlabelled, deprecated
//     version that Secrets Manager deletes in due course.
//
// The zero version creates the secret with CreateSecret; a secret that exists
// without any value (as infrastructure-as-code tools often create it) is
// given its first value instead.
//
// Errors keep their kind: provider.ErrNotFound, provider.ErrConflict,
// provider.ErrPermission (naming the IAM action to grant),
// provider.ErrInvalidRecord for a binary or non-JSON secret, and
// *provider.TransientError for throttling, 5xx and network failures, which
// the SDK's standard retryer has already retried. The original SDK error
// stays in the chain for errors.As.
//
// A Backend holds no mutable state of its own and is safe for concurrent use.
// It never logs or returns secret values.
package awssm
