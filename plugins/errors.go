package plugins

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// MaxErrorMessage is the longest error text, in bytes, that crosses the
// plugin boundary; longer messages are truncated on both sides.
const MaxErrorMessage = 1024

// errorDomain is the google.rpc.ErrorInfo domain of errors this protocol
// version encodes.
const errorDomain = "credhelper.plugin.v1"

// ErrorInfo metadata keys.
const (
	metaKinds     = "kinds"
	metaTransient = "transient"
)

// reasonUnknown is the ErrorInfo reason of an error that wraps no known kind.
const reasonUnknown = "UNKNOWN"

// errConnection marks a failure of the connection to the plugin process
// rather than an error the plugin returned.
var errConnection = errors.New("connection to the plugin process failed")

// errorKind pairs an error kind's wire name with the error it stands for
// and the gRPC code a plugin reports it with.
type errorKind struct {
	reason string
	err    error
	code   codes.Code
}

// errorKinds lists every kind that crosses the boundary, most specific
// first: the first kind an error wraps becomes the ErrorInfo reason and
// chooses the status code.
func errorKinds() []errorKind {
	return []errorKind{
		{"NOT_FOUND", provider.ErrNotFound, codes.NotFound},
		{"CONFLICT", provider.ErrConflict, codes.Aborted},
		{"READ_ONLY", provider.ErrReadOnly, codes.FailedPrecondition},
		{"REFRESH_REJECTED", provider.ErrRefreshRejected, codes.Unauthenticated},
		{"LINEAGE_BROKEN", provider.ErrLineageBroken, codes.FailedPrecondition},
		{"EXPIRED", provider.ErrExpired, codes.FailedPrecondition},
		{"INVALID_RECORD", provider.ErrInvalidRecord, codes.InvalidArgument},
		{"INVALID_TOKEN", provider.ErrInvalidToken, codes.InvalidArgument},
		{"PERMISSION", provider.ErrPermission, codes.PermissionDenied},
		{"UNSUPPORTED", provider.ErrUnsupported, codes.Unimplemented},
		{"NOT_DELIVERED", provider.ErrNotDelivered, codes.Unavailable},
		{"DEADLINE_EXCEEDED", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"CANCELED", context.Canceled, codes.Canceled},
	}
}

// toStatus encodes err, returned by a served backend or issuer, as a gRPC
// status error that keeps its kinds and transience. It is the only way
// errors leave a plugin.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var names []string
	code := codes.Unknown
	for _, k := range errorKinds() {
		if errors.Is(err, k.err) {
			if names == nil {
				code = k.code
			}
			names = append(names, k.reason)
		}
	}
	transient := provider.IsTransient(err)
	if transient && code != codes.DeadlineExceeded {
		code = codes.Unavailable
	}
	reason := reasonUnknown
	if len(names) > 0 {
		reason = names[0]
	}
	info := &errdetails.ErrorInfo{
		Domain: errorDomain,
		Reason: reason,
		Metadata: map[string]string{
			metaKinds:     strings.Join(names, ","),
			metaTransient: boolString(transient),
		},
	}
	st, detErr := status.New(code, cleanMessage(err.Error())).WithDetails(info)
	if detErr != nil {
		return status.Error(code, cleanMessage(err.Error()))
	}
	return st.Err()
}

// fromStatus decodes an error from a gRPC call into the plugin: an error
// that wraps the kinds the plugin reported and, when transient, a
// *provider.TransientError. Errors the plugin did not encode (a non-Go
// plugin without the detail, or a failure of the connection itself) are
// classified by their status code alone.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return provider.Transient(&remoteError{msg: cleanMessage(err.Error()), errs: []error{errConnection}})
	}
	re := &remoteError{msg: cleanMessage(st.Message())}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		kinds := info.GetMetadata()[metaKinds]
		if _, present := info.GetMetadata()[metaKinds]; !present {
			kinds = info.GetReason()
		}
		for _, name := range strings.Split(kinds, ",") {
			for _, k := range errorKinds() {
				if k.reason == name {
					re.errs = append(re.errs, k.err)
				}
			}
		}
		if info.GetMetadata()[metaTransient] == "true" {
			return provider.Transient(re)
		}
		return re
	}
	switch st.Code() {
	case codes.NotFound:
		re.errs = []error{provider.ErrNotFound}
	case codes.Aborted:
		re.errs = []error{provider.ErrConflict}
	case codes.PermissionDenied:
		re.errs = []error{provider.ErrPermission}
	case codes.Unauthenticated:
		re.errs = []error{provider.ErrRefreshRejected}
	case codes.Unimplemented:
		re.errs = []error{provider.ErrUnsupported}
	case codes.Canceled:
		re.errs = []error{context.Canceled}
	case codes.DeadlineExceeded:
		re.errs = []error{context.DeadlineExceeded}
		return provider.Transient(re)
	case codes.ResourceExhausted:
		return provider.Transient(re)
	case codes.Unavailable:
		// Without our detail, Unavailable comes from gRPC itself: the
		// connection to the process failed, perhaps after the request was
		// sent. It never means "not delivered".
		re.errs = []error{errConnection}
		return provider.Transient(re)
	}
	return re
}

// remoteError is an error relayed from a plugin: its text as the plugin
// wrote it (cleaned and truncated) and the kinds it carried.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string { return e.msg }

// Unwrap returns the kinds, so errors.Is finds each of them.
func (e *remoteError) Unwrap() []error { return e.errs }

// cleanMessage makes relayed text one line of valid UTF-8 of at most
// MaxErrorMessage bytes.
func cleanMessage(s string) string { return provider.SanitizeMessage(s, MaxErrorMessage) }

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
