package awssm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/credhelper/credhelper/provider"
)

// Error codes Secrets Manager (or the AWS front end) answers without a
// modelled type.
var (
	accessDeniedCodes = map[string]bool{"AccessDeniedException": true, "AccessDenied": true}
	credentialCodes   = map[string]bool{
		"UnrecognizedClientException": true, "InvalidClientTokenId": true,
		"InvalidSignatureException": true, "SignatureDoesNotMatch": true,
		"IncompleteSignature": true, "MissingAuthenticationToken": true,
		"ExpiredTokenException": true, "ExpiredToken": true,
	}
)

// The SDK's own classification of errors its standard retryer retries.
var (
	sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	sdkThrottles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	sdkTimeouts   = retry.IsErrorTimeouts(retry.DefaultTimeouts)
)

// classify maps a failed call op on secret key to an error of the right
// kind, by error type and code only, never by message text.
func classify(op, key string, err error) error {
	var (
		notFound     *types.ResourceNotFoundException
		decrypt      *types.DecryptionFailure
		encrypt      *types.EncryptionFailure
		invalidReq   *types.InvalidRequestException
		invalidParam *types.InvalidParameterException
		limit        *types.LimitExceededException
		apiErr       smithy.APIError
	)
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	// The message says what to do; the SDK error stays reachable with
	// errors.As.
	wrap := func(kind provider.Kind, format string, args ...any) error {
		msg := fmt.Sprintf("awssm: %s on secret %q: ", op, key) + fmt.Sprintf(format, args...) + " (" + detail(err) + ")"
		return provider.NewError(msg, err, kind)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return wrap("", "cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return provider.Transient(wrap("", "timed out: retry, or allow more time"))
	case errors.As(err, &notFound):
		return wrap(provider.KindNotFound, "no such secret or no AWSCURRENT value: check the name, account and region, or store a first value")
	case accessDeniedCodes[code]:
		return wrap(provider.KindPermission, "access denied: grant secretsmanager:%s on this secret to the caller's IAM identity", op)
	case credentialCodes[code]:
		return wrap(provider.KindPermission, "AWS rejected the credentials: renew them (for example `aws sso login`) or check the profile")
	case errors.As(err, &decrypt):
		return wrap("", "cannot decrypt the secret: grant kms:Decrypt on the secret's KMS key and check that the key is enabled")
	case errors.As(err, &encrypt):
		return wrap("", "cannot encrypt the new value: grant kms:GenerateDataKey on the secret's KMS key and check that the key is enabled")
	case errors.As(err, &invalidReq):
		return wrap("", "the secret's state does not allow this (for example it is scheduled for deletion: restore it with `aws secretsmanager restore-secret --secret-id %s`)", key)
	case errors.As(err, &invalidParam):
		return wrap("", "Secrets Manager rejected a parameter: check the secret name or ARN")
	case errors.As(err, &limit):
		return provider.Transient(wrap("", "a Secrets Manager quota is exhausted (requests, or versions created in the last 24 hours): write less often and retry later"))
	case isTransient(err, apiErr):
		return provider.Transient(wrap("", "Secrets Manager is unavailable or throttling (after the SDK's retries): retry later"))
	default:
		return wrap("", "failed")
	}
}

// isTransient reports whether the SDK's standard retryer would retry err, or
// the service says the fault is its own.
func isTransient(err error, apiErr smithy.APIError) bool {
	if sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary ||
		sdkThrottles.IsErrorThrottle(err) == aws.TrueTernary ||
		sdkTimeouts.IsErrorTimeout(err) == aws.TrueTernary {
		return true
	}
	if apiErr != nil && apiErr.ErrorFault() == smithy.FaultServer {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	return errors.As(err, &status) && status.HTTPStatusCode() >= 500
}

// detail is the service's error code and message, or the SDK's error text,
// on one line. Neither carries secret values.
func detail(err error) string {
	var apiErr smithy.APIError
	s := err.Error()
	if errors.As(err, &apiErr) {
		s = apiErr.ErrorCode()
		if m := apiErr.ErrorMessage(); m != "" {
			s += ": " + m
		}
	}
	return strings.Join(strings.Fields(s), " ")
}

func isResourceExists(err error) bool {
	var e *types.ResourceExistsException
	return errors.As(err, &e)
}

func isInvalidParameter(err error) bool {
	var e *types.InvalidParameterException
	return errors.As(err, &e)
}
